"""The one module that knows the databases apart: the same SQL means the same on every backend."""


def test_a_question_mark_or_percent_sign_in_quotes_is_text_not_a_placeholder(outbox):
    db = outbox.db  # the site's database, on each backend in turn
    db.execute("INSERT INTO users (username, twitter_token) VALUES (?, 'why? 100%')", ("erin",))
    row = db.one(
        "SELECT username, twitter_token, 'it''s 50% off?' AS note FROM users"
        " WHERE twitter_token LIKE '%?%' AND username = ?", ("erin",),
    )
    assert dict(row) == {"username": "erin", "twitter_token": "why? 100%", "note": "it's 50% off?"}
