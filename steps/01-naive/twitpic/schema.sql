-- The site's own data. The demo users hold the fake Twitter's demo tokens, the way a real app
-- stores each user's OAuth token once they connect their Twitter account.
CREATE TABLE IF NOT EXISTS users (
    username TEXT PRIMARY KEY,
    twitter_token TEXT NOT NULL
);

INSERT OR IGNORE INTO users (username, twitter_token) VALUES
    ('alice', 'demo-token-alice'),
    ('bob', 'demo-token-bob'),
    ('carol', 'demo-token-carol'),
    ('dave', 'demo-token-dave');

CREATE TABLE IF NOT EXISTS photos (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL REFERENCES users (username),
    caption TEXT NOT NULL,
    filename TEXT NOT NULL UNIQUE,
    content_type TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE IF NOT EXISTS comments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    photo_id INTEGER NOT NULL REFERENCES photos (id),
    username TEXT NOT NULL REFERENCES users (username),
    body TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
