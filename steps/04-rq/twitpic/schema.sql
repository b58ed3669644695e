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
-- Each tweet, by the key the web request gave it (`comment-42`, `photo-7`). The run of its job
-- that posts it reserves it first, for a while, then marks it posted. A run that finds it posted
-- posts nothing: its job ran twice, or was queued twice. A run that finds it reserved by another
-- waits. A reservation whose time ran out belonged to a run that crashed, and is taken over.
CREATE TABLE IF NOT EXISTS posted_tweets (
    tweet_id VARCHAR(64) PRIMARY KEY,
    holder VARCHAR(32),  -- the run that reserved it (NULL once posted)...
    held_until DOUBLE PRECISION,  -- ...until then: the database's clock, in seconds since 1970
    twitter_id VARCHAR(32),  -- NULL when Twitter refused it as a duplicate: it had it already
    posted_at TIMESTAMP NULL  -- NULL until it is posted
)
-- --8<-- [end:posted_tweets]
