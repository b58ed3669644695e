"""Posting to Twitter's API from a background worker: with timeouts, and telling errors apart."""

import email.utils
import time

import requests


class TwitterError(Exception):
    """Twitter did not take the tweet this time (an error on its side): try again later."""


class TwitterUnavailable(TwitterError):
    """Twitter is down, overloaded or too slow: every tweet fails alike, so it says nothing about this one."""


class RateLimited(TwitterError):
    """Too many tweets from this user's credentials: Twitter says when to try again."""

    def __init__(self, message: str, retry_after: float):
        super().__init__(message)
        self.retry_after = retry_after  # seconds


class TweetRejected(Exception):
    """Twitter refused this tweet for good (a 4xx answer): trying again will not help."""


class DuplicateTweet(TweetRejected):
    """Twitter already has exactly this tweet from this user."""


DUPLICATE_CONTENT = "duplicate content"
UNAVAILABLE = {502, 503, 504}  # the answers of a service that is down or overloaded
RATE_LIMIT_WAIT = 60.0  # seconds to wait after a 429 that does not say how long


# --8<-- [start:post_tweet]
def post_tweet(api_url: str, token: str, text: str, timeout: tuple[float, float]) -> str:
    """Post a tweet; its id. A worker can afford to wait, but not forever: `timeout` is
    (to connect, for each answer), in seconds."""
    try:
        response = requests.post(
            api_url + "/2/tweets",
            json={"text": text},
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
        )
    except requests.RequestException as error:
        raise TwitterUnavailable(f"Twitter unreachable: {error.__class__.__name__}") from error
    if response.status_code == 403 and DUPLICATE_CONTENT in response.text:
        raise DuplicateTweet("Twitter already has this tweet")
    if response.status_code == 429:
        raise RateLimited("Twitter: too many requests", retry_after(response))
    if 400 <= response.status_code < 500:
        raise TweetRejected(f"Twitter refused it: {response.status_code} {response.text[:200]}")
    if response.status_code in UNAVAILABLE:
        raise TwitterUnavailable(f"Twitter answered {response.status_code}")
    if response.status_code != 201:
        raise TwitterError(f"Twitter answered {response.status_code}")
    return response.json()["data"]["id"]
# --8<-- [end:post_tweet]


def retry_after(response: requests.Response) -> float:
    """Seconds until Twitter takes this user's tweets again: `Retry-After` (seconds, or a date),
    else `x-rate-limit-reset` (Twitter's own: when, in seconds since 1970)."""
    header = response.headers.get("Retry-After", "").strip()
    if header.isdigit():
        return float(header)
    if header:
        try:
            return max(0.0, email.utils.parsedate_to_datetime(header).timestamp() - time.time())
        except (TypeError, ValueError):
            pass  # neither: a malformed header
    reset = response.headers.get("x-rate-limit-reset", "").strip()
    if reset.isdigit():
        return max(0.0, int(reset) - time.time())
    return RATE_LIMIT_WAIT
