"""The text of the tweets the site posts: "Check out this cool pic." and friends."""

MAX_TWEET_LENGTH = 280
ELLIPSIS = "…"


def _fit(words: str, link: str) -> str:
    """`words link`, shortening the words so the whole tweet fits in 280 characters."""
    room = MAX_TWEET_LENGTH - len(link) - 1
    if len(words) > room:
        words = words[: room - len(ELLIPSIS)].rstrip() + ELLIPSIS
    return f"{words} {link}" if words else link


def photo_tweet(caption: str, photo_url: str) -> str:
    return _fit(caption or "Check out this cool pic.", photo_url)


def comment_tweet(body: str, photo_url: str) -> str:
    return _fit(body, photo_url)
