-- The site's own data, and now the queue: a table of tweets to post.
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

-- --8<-- [start:tweet_jobs]
CREATE TABLE IF NOT EXISTS tweet_jobs (
    id $ID,
    username VARCHAR(64) NOT NULL REFERENCES users (username),
    text VARCHAR(300) NOT NULL,
    status VARCHAR(10) NOT NULL DEFAULT 'pending',  -- pending, claimed, done or failed
    attempts INTEGER NOT NULL DEFAULT 0,
    run_after DOUBLE PRECISION NOT NULL DEFAULT 0,  -- unix time: not before (retry delay)
    locked_until DOUBLE PRECISION,  -- unix time: the claim's lease ends (NULL: no lease)
    claimed_by VARCHAR(32),  -- the current claim's token: only its job worker records how the job ended
    tweet_id VARCHAR(32),
    last_error VARCHAR(300),
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
-- --8<-- [end:tweet_jobs]

CREATE INDEX IF NOT EXISTS tweet_jobs_by_status ON tweet_jobs (status, id)
