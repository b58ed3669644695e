"""The demo users of the fake Twitter and their API tokens.

It is a fake: the tokens are not secrets. A stage's app holds the same tokens for its demo users,
the way a real app stores each user's OAuth token after they connect their Twitter account.
"""

DEMO_USERS = {
    "alice": "demo-token-alice",
    "bob": "demo-token-bob",
    "carol": "demo-token-carol",
    "dave": "demo-token-dave",
}


def parse_user(text: str) -> tuple[str, str]:
    """`NAME=TOKEN` from the command line."""
    name, sep, token = text.partition("=")
    name, token = name.strip(), token.strip()
    if not sep or not name or not token:
        raise ValueError(f"a user is NAME=TOKEN, got {text!r}")
    return name, token
