-- The site's own data, and the outbox of tweets to queue. The queue itself lives on Redis.
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
);
-- --8<-- [end:posted_tweets]

-- --8<-- [start:outbox]
-- Each tweet to post, written in the transaction that saves its comment or photo. The relay
-- queues it as the job named after it, then deletes the row once the tweet is posted.
CREATE TABLE IF NOT EXISTS outbox (
    tweet_id VARCHAR(64) PRIMARY KEY,  -- `comment-42`, `photo-7`: the job's name is made from it
    username VARCHAR(64) NOT NULL,
    text VARCHAR(300) NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,  -- the database's clock, in seconds since 1970
    sent_at DOUBLE PRECISION NULL  -- when the relay queued it: NULL until then, and again if Redis lost it
);

-- The relay's next rows, oldest first, without reading the sent ones.
CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (sent_at, created_at)
-- --8<-- [end:outbox]
