-- The site's own data. The queue itself lives on the queue server.
-- $ID is the dialect's auto-incrementing primary key (see dialects.py).
CREATE TABLE IF NOT EXISTS users (
    username VARCHAR(64) PRIMARY KEY,
    twitter_token VARCHAR(200) NOT NULL
);

CREATE TABLE IF NOT EXISTS photos (
    id $ID,
    username VARCHAR(64) NOT NULL REFERENCES users (username),
    caption VARCHAR(300) NOT NULL,
    filename VARCHAR(100) NOT NULL UNIQUE,
    content_type VARCHAR(50) NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE IF NOT EXISTS comments (
    id $ID,
    photo_id BIGINT NOT NULL REFERENCES photos (id),
    username VARCHAR(64) NOT NULL REFERENCES users (username),
    body VARCHAR(300) NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- --8<-- [start:posted_tweets]
-- What has been posted, by the id each tweet got when it was queued: a message that is delivered
-- twice (its worker died before closing it) is recognised and not posted again.
CREATE TABLE IF NOT EXISTS posted_tweets (
    tweet_id VARCHAR(32) PRIMARY KEY,
    twitter_id VARCHAR(32),  -- NULL when Twitter refused it as a duplicate: it had it already
    posted_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
-- --8<-- [end:posted_tweets]

-- Failed tries of each tweet, counted by every worker together (and across restarts), so that a
-- message that keeps failing is parked after the same number of tries however many workers try.
CREATE TABLE IF NOT EXISTS tweet_attempts (
    tweet_id VARCHAR(32) PRIMARY KEY,
    attempts INTEGER NOT NULL
)
