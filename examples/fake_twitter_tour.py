"""A tour of the fake Twitter from Python: the same calls the tests and the drill make.

Run it with `python examples/fake_twitter_tour.py`; the reference page includes it.
"""

import requests

from lab.twitter import DEMO_USERS, FakeTwitter


def tour() -> dict:
    # --8<-- [start:tour]
    with FakeTwitter.start(latency_ms=(10, 20)) as twitter:
        alice = {"Authorization": f"Bearer {DEMO_USERS['alice']}"}
        posted = requests.post(twitter.tweets_url, json={"text": "Check out this cool pic."}, headers=alice)

        twitter.set_mode("down")  # Twitter is over capacity
        failed = requests.post(twitter.tweets_url, json={"text": "Lost?"}, headers=alice)

        twitter.control(mode="up", latency_ms=[1, 2])
        requests.post(twitter.tweets_url, json={"text": "Check out this cool pic."}, headers=alice)

        return {
            "first answer": posted.status_code,  # 201
            "while down": failed.status_code,  # 503
            "ledger": [tweet["text"] for tweet in twitter.ledger()],
            "stats": twitter.stats(),  # 2 accepted, 1 duplicate, 1 rejected while down
        }
    # --8<-- [end:tour]


if __name__ == "__main__":
    for key, value in tour().items():
        print(f"{key}: {value}")
