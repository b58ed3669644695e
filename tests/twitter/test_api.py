"""POST /2/tweets: the shape of Twitter's API v2, its auth and its validation."""

import pytest
import requests

from lab.twitter import DEMO_USERS, MAX_TWEET_LENGTH

ALICE = {"Authorization": f"Bearer {DEMO_USERS['alice']}"}
BOB = {"Authorization": f"Bearer {DEMO_USERS['bob']}"}


def post(twitter, body=None, headers=ALICE, data=None, timeout=5):
    return requests.post(twitter.tweets_url, json=body, data=data, headers=headers, timeout=timeout)


def test_a_tweet_is_accepted_with_an_id_and_recorded(twitter):
    response = post(twitter, {"text": "Check out this cool pic."})

    assert response.status_code == 201
    data = response.json()["data"]
    assert data["text"] == "Check out this cool pic."
    assert data["id"].isdigit()
    [entry] = twitter.ledger()
    assert entry["id"] == data["id"]
    assert entry["user"] == "alice"
    assert entry["text"] == "Check out this cool pic."
    assert entry["received_at"].endswith("+00:00")
    assert entry["duplicate"] is False
    assert entry["sender"] == "127.0.0.1"  # the address the tweet came from


def test_ids_are_unique_and_increasing(twitter):
    ids = [int(post(twitter, {"text": f"pic {n}"}).json()["data"]["id"]) for n in range(5)]
    assert ids == sorted(set(ids))


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer not-a-token"}, {"Authorization": f"Basic {DEMO_USERS['alice']}"}],
    ids=["missing", "unknown", "not-bearer"],
)
def test_a_missing_or_unknown_token_is_401(twitter, headers):
    response = post(twitter, {"text": "hello"}, headers=headers)

    assert response.status_code == 401
    assert response.json()["status"] == 401
    assert "token" in response.json()["detail"]
    assert twitter.ledger() == []
    assert twitter.stats()["rejected"] == {"unauthorized": 1}


@pytest.mark.parametrize(
    "body, data, detail",
    [
        (None, "not json", "not valid JSON"),
        (None, b"\xff\xfe", "not valid JSON"),
        ([1, 2], None, '"text"'),
        ({"txt": "hello"}, None, '"text"'),
        ({"text": 42}, None, "must be a string"),
        ({"text": ""}, None, "empty"),
        ({"text": "   "}, None, "empty"),
        ({"text": "x" * (MAX_TWEET_LENGTH + 1)}, None, "over the limit of 280"),
    ],
    ids=["not-json", "not-utf8", "not-object", "no-text", "text-not-string", "empty", "blank", "281-chars"],
)
def test_a_bad_body_is_400_with_a_json_error(twitter, body, data, detail):
    response = post(twitter, body, data=data)

    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/json"
    assert detail in response.json()["detail"]
    assert twitter.ledger() == []


def test_exactly_280_characters_is_accepted(twitter):
    text = "é" * MAX_TWEET_LENGTH  # characters, not bytes
    assert post(twitter, {"text": text}).status_code == 201


def test_a_body_without_content_length_is_400(twitter):
    response = requests.post(
        twitter.tweets_url, data=iter([b'{"text": "chunked"}']), headers=ALICE, timeout=5
    )
    assert response.status_code == 400
    assert twitter.ledger() == []


def test_the_same_text_twice_from_one_user_counts_as_a_duplicate(twitter):
    post(twitter, {"text": "same words"})
    post(twitter, {"text": "same words"}, headers=BOB)  # another user: not a duplicate
    post(twitter, {"text": "same words"})
    post(twitter, {"text": "same words"})

    assert [t["duplicate"] for t in twitter.ledger()] == [False, False, True, True]
    assert twitter.stats()["duplicates"] == 2
    assert twitter.stats()["accepted"] == 4


def test_duplicates_can_be_refused_as_twitter_did(twitter):
    twitter.control(reject_duplicates=True)
    first = post(twitter, {"text": "same words"})
    again = post(twitter, {"text": "same words"})
    other_user = post(twitter, {"text": "same words"}, headers=BOB)

    assert [first.status_code, again.status_code, other_user.status_code] == [201, 403, 201]
    assert again.json()["detail"] == "You are not allowed to create a Tweet with duplicate content."
    assert [t["user"] for t in twitter.ledger()] == ["alice", "bob"]
    assert twitter.stats()["rejected"] == {"duplicate": 1}
    assert twitter.stats()["duplicates"] == 0


def test_reset_clears_the_ledger_and_the_counts(twitter):
    post(twitter, {"text": "one"})
    post(twitter, {"text": "one"})
    post(twitter, {"text": "x"}, headers={})

    twitter.reset()

    assert twitter.ledger() == []
    assert twitter.stats() == {
        "accepted": 0, "duplicates": 0, "rejected": {}, "held": 0, "received": 0, "in_flight": 0, "mode": "up"
    }
    assert post(twitter, {"text": "one"}).json()  # not a duplicate of a forgotten tweet
    assert twitter.stats()["duplicates"] == 0


def test_users_lists_the_demo_users_and_their_tokens(twitter):
    assert twitter.users() == DEMO_USERS


def test_users_are_configurable():
    from lab.twitter import FakeTwitter

    with FakeTwitter.start(users={"zed": "token-of-zed"}) as twitter:
        assert twitter.users() == {"zed": "token-of-zed"}
        accepted = post(twitter, {"text": "hi"}, headers={"Authorization": "Bearer token-of-zed"})
        refused = post(twitter, {"text": "hi"})  # alice is not a user any more
        assert accepted.status_code == 201
        assert refused.status_code == 401
        assert [t["user"] for t in twitter.ledger()] == ["zed"]


def test_unknown_routes_and_methods_answer_with_json_errors(twitter):
    assert requests.get(twitter.tweets_url, timeout=5).status_code == 405
    assert requests.get(f"{twitter.api_url}/1.1/statuses/update.json", timeout=5).status_code == 404
    # The control port has no API: a stage pointed at it by mistake gets a clear 404.
    reply = requests.post(f"{twitter.control_url}/2/tweets", json={"text": "x"}, headers=ALICE, timeout=5)
    assert reply.status_code == 404


def test_the_control_routes_answer_on_both_ports(twitter):
    for base in (twitter.api_url, twitter.control_url):
        assert requests.get(f"{base}/_control", timeout=5).json()["mode"] == "up"
        assert requests.get(f"{base}/_stats", timeout=5).json()["accepted"] == 0


def test_the_page_shows_a_button_per_mode(twitter):
    response = requests.get(twitter.control_url + "/", timeout=5)
    assert response.headers["Content-Type"].startswith("text/html")
    for mode in ("up", "slow", "down", "refuse", "hang", "flaky"):
        assert f'data-mode="{mode}"' in response.text


def test_errors_leave_a_keep_alive_connection_usable(twitter):
    """A 401 or 400 still reads the body, so the next request on the connection is intact."""
    with requests.Session() as session:
        codes = [
            session.post(twitter.tweets_url, json={"text": "who am I"}, timeout=5).status_code,
            session.post(twitter.tweets_url, json={"text": ""}, headers=ALICE, timeout=5).status_code,
            session.post(twitter.tweets_url, json={"text": "fine"}, headers=ALICE, timeout=5).status_code,
        ]
    assert codes == [401, 400, 201]
    assert [t["text"] for t in twitter.ledger()] == ["fine"]
