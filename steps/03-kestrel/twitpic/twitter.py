"""Posting to Twitter's API from a background worker: with a timeout, and telling errors apart."""

import requests


class TwitterError(Exception):
    """Twitter did not take the tweet this time (an error on its side): try again later."""


class TwitterUnavailable(TwitterError):
    """Twitter is down, overloaded or too slow: every tweet fails alike, so it says nothing about this one."""


class TweetRejected(Exception):
    """Twitter refused this tweet for good (a 4xx answer): trying again will not help."""


class DuplicateTweet(TweetRejected):
    """Twitter already has exactly this tweet from this user."""


DUPLICATE_CONTENT = "duplicate content"
UNAVAILABLE = {429, 502, 503, 504}  # too many requests, and the answers of a service that is down


# --8<-- [start:post_tweet]
def post_tweet(api_url: str, token: str, text: str, timeout: float) -> str:
    """Post a tweet; its id. A worker can afford to wait, but not forever."""
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
    if 400 <= response.status_code < 500 and response.status_code != 429:
        raise TweetRejected(f"Twitter refused it: {response.status_code} {response.text[:200]}")
    if response.status_code in UNAVAILABLE:
        raise TwitterUnavailable(f"Twitter answered {response.status_code}")
    if response.status_code != 201:
        raise TwitterError(f"Twitter answered {response.status_code}")
    return response.json()["data"]["id"]
# --8<-- [end:post_tweet]
