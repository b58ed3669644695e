"""The outage modes, the latency range and the time scale: what the stages are tested against."""

import socket
import statistics
import threading
import time

import pytest
import requests

from lab.runtime.process import wait_until
from lab.twitter import DEMO_USERS, FakeTwitter

ALICE = {"Authorization": f"Bearer {DEMO_USERS['alice']}"}


def post(twitter, text="hello", timeout=5):
    return requests.post(twitter.tweets_url, json={"text": text}, headers=ALICE, timeout=timeout)


def timed_post(twitter, text="hello"):
    started = time.perf_counter()
    response = post(twitter, text)
    return response, time.perf_counter() - started


def test_latency_stays_inside_the_range(twitter):
    twitter.control(latency_ms=[60, 90])
    drawn = []
    for n in range(12):
        response, seconds = timed_post(twitter, f"pic {n}")
        assert response.status_code == 201
        waited_ms = float(response.headers["X-Latency-Ms"])  # what the server drew and slept
        assert 60 <= waited_ms <= 90
        assert seconds >= waited_ms / 1000  # and it really waited that long
        drawn.append(waited_ms)

    assert max(drawn) - min(drawn) > 5  # drawn from the range, not one fixed value
    # The wall clock agrees, with headroom for a busy machine.
    assert statistics.median([timed_post(twitter, "once more")[1]]) < 0.090 + 0.150


def test_the_time_scale_scales_the_latency():
    # 1-1.2 s of story time at a twentieth of the speed: 50-60 ms.
    with FakeTwitter.start(latency_ms=(1000, 1200), time_scale=0.05) as twitter:
        assert twitter.state()["time_scale"] == 0.05
        elapsed = [timed_post(twitter, f"pic {n}")[1] for n in range(5)]
    assert min(elapsed) >= 0.050
    assert max(elapsed) < 0.8  # far below the unscaled 1 s


def test_slow_multiplies_the_latency_by_ten(twitter):
    twitter.control(mode="slow", latency_ms=[25, 25])
    response, seconds = timed_post(twitter)
    assert response.status_code == 201
    assert float(response.headers["X-Latency-Ms"]) == 250
    assert seconds >= 0.250


def test_down_answers_503_and_records_nothing(twitter):
    twitter.set_mode("down")
    response = post(twitter)

    assert response.status_code == 503
    assert response.json()["detail"] == "Twitter is over capacity."
    assert twitter.ledger() == []
    assert twitter.stats()["rejected"] == {"down": 1}


def test_limited_answers_429_with_how_long_to_wait(twitter):
    twitter.set_mode("limited")
    response = post(twitter)

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "15"  # story seconds, at this twitter's scale 1
    assert twitter.ledger() == []
    assert twitter.stats()["rejected"] == {"limited": 1}


def test_limited_waits_are_scaled_and_whole_seconds():
    with FakeTwitter.start(time_scale=0.1, mode="limited") as scaled:
        assert post(scaled).headers["Retry-After"] == "2"  # 1.5 s, in HTTP's whole seconds
    with FakeTwitter.start(time_scale=0.01, mode="limited") as fast:
        assert post(fast).headers["Retry-After"] == "1"  # never 0: that would mean "now"
        fast.control(retry_after=4)  # or as a test chooses
        assert post(fast).headers["Retry-After"] == "4"


def test_refuse_closes_the_api_port_and_up_opens_it_again(twitter):
    twitter.set_mode("refuse")

    with pytest.raises(requests.ConnectionError):
        post(twitter)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", int(twitter.api_url.rsplit(":", 1)[1])), timeout=1)
    assert twitter.state()["mode"] == "refuse"  # the control port still answers

    twitter.set_mode("up")
    assert post(twitter).status_code == 201
    assert len(twitter.ledger()) == 1


def test_refuse_drops_a_connection_that_was_already_open(twitter):
    session = requests.Session()  # keep-alive: this connection outlives the listening socket
    assert session.post(twitter.tweets_url, json={"text": "before"}, headers=ALICE, timeout=5).ok
    twitter.set_mode("refuse")

    with pytest.raises(requests.ConnectionError):
        session.post(twitter.tweets_url, json={"text": "during"}, headers=ALICE, timeout=5)
    session.close()
    assert [t["text"] for t in twitter.ledger()] == ["before"]


def test_hang_holds_a_request_until_the_client_gives_up(twitter):
    twitter.set_mode("hang")

    with pytest.raises(requests.ReadTimeout):
        post(twitter, "given up", timeout=0.3)

    # The request was never processed, so it leaves with its client: nothing is posted later.
    wait_until(lambda: twitter.state()["held"] == 0, timeout=5, what="the abandoned request dropped")
    twitter.set_mode("up")
    assert twitter.ledger() == []
    assert twitter.stats()["rejected"] == {"abandoned": 1}


def test_hang_answers_held_requests_when_the_mode_changes(twitter):
    twitter.set_mode("hang")
    answers = []
    thread = threading.Thread(target=lambda: answers.append(post(twitter, "held", timeout=30)))
    thread.start()
    wait_until(lambda: twitter.state()["held"] == 1, timeout=5, what="one request held")
    assert answers == []

    twitter.set_mode("up")
    thread.join(timeout=10)

    assert [a.status_code for a in answers] == [201]
    assert twitter.state()["held"] == 0
    assert [t["text"] for t in twitter.ledger()] == ["held"]


def test_calls_are_counted_when_they_arrive_and_while_in_flight(twitter):
    twitter.set_mode("hang")
    answers = []
    threads = [threading.Thread(target=lambda n=n: answers.append(post(twitter, f"held {n}", timeout=30)))
               for n in range(3)]
    for thread in threads:
        thread.start()
    wait_until(lambda: twitter.state()["held"] == 3, timeout=5, what="three requests held")
    assert (twitter.stats()["received"], twitter.stats()["in_flight"]) == (3, 3)

    twitter.set_mode("up")
    for thread in threads:
        thread.join(timeout=10)

    assert sorted(a.status_code for a in answers) == [201, 201, 201]
    assert (twitter.stats()["received"], twitter.stats()["in_flight"]) == (3, 0)


def test_a_late_second_delivery_is_counted_once_the_system_settles(twitter):
    """`tweets_starting_with(..., idle=...)` reads the ledger only when nothing is on its way."""
    post(twitter, "twice https://twitpic.example/1")
    twitter.control(latency_ms=[500, 500])
    late = threading.Thread(target=lambda: post(twitter, "twice https://twitpic.example/1", timeout=30))
    late.start()
    wait_until(lambda: twitter.stats()["in_flight"] == 1, timeout=5, what="the second delivery on its way")

    found = twitter.tweets_starting_with(["twice"], seconds=5, idle=lambda: not late.is_alive())

    assert len(found["twice"]) == 2
    late.join()


def test_a_system_that_never_settles_fails_the_wait(twitter, monkeypatch):
    from lab.twitter import client

    monkeypatch.setattr(client, "SETTLE_SECONDS", 0.2)
    post(twitter, "done https://twitpic.example/1")
    with pytest.raises(AssertionError, match="did not settle"):
        twitter.tweets_starting_with(["done"], idle=lambda: False)


def test_a_missing_tweet_is_waited_for_until_the_system_settles_not_longer(twitter):
    """A settled system posts nothing more: the wait for a lost tweet ends when it settles."""
    twitter.control(latency_ms=[300, 300])
    busy = threading.Thread(target=lambda: post(twitter, "arrives https://twitpic.example/1", timeout=30))
    busy.start()
    wait_until(lambda: twitter.stats()["in_flight"] == 1, timeout=5, what="the call in flight")
    started = time.monotonic()

    found = twitter.tweets_starting_with(["arrives", "never sent"], seconds=120, idle=lambda: True)

    assert len(found["arrives"]) == 1  # the call in flight was waited for: not settled before it landed
    assert found["never sent"] == []
    assert time.monotonic() - started < 60  # settled long before the two-minute bound
    busy.join()


def test_hang_holds_200_requests_while_control_and_ledger_answer_within_100ms(twitter):
    """The fake must never be the bottleneck: the stages' workers block, not the fake."""
    twitter.set_mode("hang")
    host, port = twitter.api_url.removeprefix("http://").split(":")
    held = []
    try:
        for n in range(200):
            sock = socket.create_connection((host, int(port)), timeout=5)
            body = f'{{"text": "held {n}"}}'.encode()
            sock.sendall(
                b"POST /2/tweets HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + f"Authorization: Bearer {DEMO_USERS['alice']}\r\n".encode()
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            held.append(sock)
        wait_until(lambda: twitter.state()["held"] == 200, timeout=10, what="200 requests held")

        for url in (twitter.control_url, twitter.api_url):
            for path in ("/_control", "/_ledger", "/_stats"):
                started = time.perf_counter()
                assert requests.get(url + path, timeout=5).ok
                assert time.perf_counter() - started < 0.100, f"{url}{path} was slow"

        twitter.set_mode("up")
        for sock in held:
            sock.settimeout(10)
            assert sock.recv(4096).startswith(b"HTTP/1.1 201 ")
    finally:
        for sock in held:
            sock.close()
    assert twitter.stats()["accepted"] == 200


def test_flaky_fails_about_the_given_share(twitter):
    twitter.control(mode="flaky", fail_rate=0.5)
    codes = [post(twitter, f"pic {n}").status_code for n in range(200)]

    failures = codes.count(503)
    assert set(codes) == {201, 503}
    assert 60 <= failures <= 140  # 100 expected; this band is over 5 standard deviations wide
    assert twitter.stats()["rejected"] == {"flaky": failures}
    assert twitter.stats()["accepted"] == 200 - failures


@pytest.mark.parametrize("rate, expected", [(0.0, {201}), (1.0, {503})])
def test_flaky_at_the_extremes(twitter, rate, expected):
    twitter.control(mode="flaky", fail_rate=rate)
    assert {post(twitter, f"pic {n}").status_code for n in range(20)} == expected


@pytest.mark.parametrize(
    "changes, detail",
    [
        ({"mode": "sideways"}, "mode must be one of"),
        ({"latency_ms": [5, 1]}, "lo <= hi"),
        ({"latency_ms": "fast"}, "latency_ms"),
        ({"fail_rate": 1.5}, "from 0 to 1"),
        ({"fail_rate": "often"}, "fail_rate"),
        ({"mode": "down", "colour": "red"}, "unknown control field"),
        ({"reject_duplicates": "yes"}, "true or false"),
        ({"retry_after": 0}, "at least 1"),
        ({"retry_after": 1.5}, "whole number of seconds"),
    ],
)
def test_bad_control_values_are_400_and_change_nothing(twitter, changes, detail):
    before = twitter.state()
    response = requests.post(f"{twitter.control_url}/_control", json=changes, timeout=5)

    assert response.status_code == 400
    assert detail in response.json()["detail"]
    assert twitter.state() == before


def test_control_changes_mode_latency_and_fail_rate_together(twitter):
    state = twitter.control(mode="flaky", latency_ms=[3, 4], fail_rate=0.25)
    assert state["mode"] == "flaky"
    assert state["latency_ms"] == [3, 4]
    assert state["fail_rate"] == 0.25
    assert twitter.state() == state
