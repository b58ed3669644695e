"""Posting to Twitter's API, now from a background worker: with a timeout, and errors raised."""

import requests


class TwitterError(Exception):
    """Twitter did not take the tweet; worth trying again later."""


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
        raise TwitterError(f"Twitter unreachable: {error.__class__.__name__}") from error
    if response.status_code != 201:
        raise TwitterError(f"Twitter answered {response.status_code}")
    return response.json()["data"]["id"]
# --8<-- [end:post_tweet]
