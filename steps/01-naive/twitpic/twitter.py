"""Posting to Twitter's API, as the case study's `Twitter::post_tweet($image->user, $tweet)` did."""

import logging

import requests
from flask import current_app

log = logging.getLogger(__name__)


# --8<-- [start:post_tweet]
def post_tweet(token: str, text: str) -> bool:
    """Post a tweet and wait for Twitter's answer: no timeout, no retry, no queue."""
    url = current_app.config["TWITTER_API_URL"] + "/2/tweets"
    try:
        response = requests.post(url, json={"text": text}, headers={"Authorization": f"Bearer {token}"})
    except requests.RequestException as error:
        log.warning("tweet lost, Twitter unreachable: %s", error)
        return False
    if response.status_code != 201:
        log.warning("tweet lost, Twitter answered %s", response.status_code)
        return False
    return True
# --8<-- [end:post_tweet]
