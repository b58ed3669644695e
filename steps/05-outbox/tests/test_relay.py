"""The relay on its own, on each database: it queues each outbox row as one job, shares the work
with a second relay, sends again what Redis lost, and forgets what is posted."""

import threading
import time
from collections import Counter

import pytest


def relay_until_done(bench) -> None:
    """What the relay does each poll, until nothing is left to queue."""
    from twitpic.outbox import send_new

    while send_new(bench.db, bench.queue, bench.settings):
        pass


def two_relays_at_once(bench) -> dict[int, Exception]:
    """Two relays, each with its own connections, started at the same moment and run until
    nothing is left to queue; what each raised, if anything."""
    start = threading.Barrier(2)
    failures = {}

    def run(number):
        relay = bench.another_relay()
        try:
            start.wait(timeout=10)
            relay_until_done(relay)
        except Exception as error:  # reported by the test, in its own thread
            failures[number] = error
        finally:
            relay.close()

    threads = [threading.Thread(target=run, args=(number,)) for number in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a relay still runs after 60 s"
    return failures


def job_ids(tweet_ids: list[str]) -> list[str]:
    from twitpic.queue import job_id_for

    return sorted(job_id_for(tweet_id) for tweet_id in tweet_ids)


def test_each_row_is_queued_as_the_job_named_after_its_tweet(outbox):
    tweet_ids = outbox.stage(3)

    relay_until_done(outbox)

    assert sorted(outbox.queue.get_job_ids()) == job_ids(tweet_ids)
    assert [outbox.queue.fetch_job(job_id).args[0] for job_id in job_ids(tweet_ids)] == sorted(tweet_ids)
    assert outbox.unsent() == []
    assert outbox.rows() == sorted(tweet_ids)  # kept until their tweets are posted


def test_a_row_a_dead_relay_queued_but_did_not_mark_becomes_one_job(outbox):
    """A relay that dies between queuing a row and marking it sent leaves it unsent; the next
    relay queues it again, RQ refuses the second job of the same name, and the row is marked."""
    from twitpic.queue import enqueue_tweet

    [tweet_id] = outbox.stage(1)
    enqueue_tweet(outbox.queue, outbox.settings, tweet_id, "bob", "queued by a relay that died")

    relay_until_done(outbox)

    assert outbox.queue.get_job_ids() == job_ids([tweet_id])
    assert outbox.queue.fetch_job(job_ids([tweet_id])[0]).args[2] == "queued by a relay that died"
    assert outbox.unsent() == []


def test_two_relays_at_once_make_one_job_per_tweet(outbox):
    """Two relays started together, on one outbox: every tweet is queued once, as one job."""
    tweet_ids = outbox.stage(300)

    assert two_relays_at_once(outbox) == {}
    assert sorted(outbox.queue.get_job_ids()) == job_ids(tweet_ids)
    assert outbox.unsent() == []


@pytest.mark.parametrize("outbox", ["postgresql", "mariadb"], indirect=True)
def test_two_relays_share_the_rows_between_them_where_the_database_skips_locked_rows(outbox, monkeypatch):
    """With SKIP LOCKED each relay takes rows the other has not locked: no row is queued by both
    (on SQLite, which locks the whole file, one relay runs)."""
    from twitpic import outbox as outbox_module

    tweet_ids = outbox.stage(300)
    queued = Counter()
    enqueue = outbox_module.enqueue_tweet

    def counted(queue, settings, tweet_id, username, text):
        queued[tweet_id] += 1
        time.sleep(0.001)  # a Redis across a network: the two relays' batches overlap
        return enqueue(queue, settings, tweet_id, username, text)

    monkeypatch.setattr(outbox_module, "enqueue_tweet", counted)

    assert two_relays_at_once(outbox) == {}
    twice = sorted(tweet_id for tweet_id, times in queued.items() if times > 1)
    assert twice == [], f"{len(twice)} rows queued by both relays"
    assert sorted(queued) == sorted(tweet_ids)
    assert sorted(outbox.queue.get_job_ids()) == job_ids(tweet_ids)


def test_a_job_redis_lost_is_queued_again_and_a_posted_tweet_is_forgotten(outbox):
    """Redis restarted without its jobs (FLUSHALL stands in for it here): the relay's check finds
    the jobs gone. The one whose tweet was posted before is forgotten; the other is queued again."""
    from twitpic.outbox import check_sent, forget_posted

    posted, waiting = outbox.stage(2)
    relay_until_done(outbox)
    outbox.db.execute(
        "INSERT INTO posted_tweets (tweet_id, twitter_id, posted_at) VALUES (?, '1', CURRENT_TIMESTAMP)", (posted,)
    )
    outbox.queue.connection.flushall()

    assert check_sent(outbox.db, outbox.queue) == (1, "")  # one lost: `waiting`
    assert outbox.unsent() == [waiting]
    forgotten = forget_posted(outbox.db)
    assert forgotten == 1, f"{forgotten} rows forgotten: only the posted tweet's may go"
    relay_until_done(outbox)

    assert outbox.queue.get_job_ids() == job_ids([waiting])
    assert outbox.rows() == [waiting]


def test_only_the_rows_of_posted_tweets_are_forgotten(outbox):
    """Queued is not done: Redis may still lose the job. A row leaves the outbox once the
    posted-tweets record says its tweet is posted, and not before."""
    from twitpic.outbox import forget_posted

    posted, queued, unsent = outbox.stage(3)
    relay_until_done(outbox)
    outbox.db.execute("UPDATE outbox SET sent_at = NULL WHERE tweet_id = ?", (unsent,))
    outbox.db.execute(
        "INSERT INTO posted_tweets (tweet_id, twitter_id, posted_at) VALUES (?, '1', CURRENT_TIMESTAMP)", (posted,)
    )
    outbox.db.execute("INSERT INTO posted_tweets (tweet_id, holder, held_until) VALUES (?, 'a-run', 0)", (queued,))

    forgotten = forget_posted(outbox.db)
    assert forgotten == 1, f"{forgotten} rows forgotten: only the posted tweet's may go"
    assert outbox.rows() == sorted([queued, unsent])  # one reserved by a run, not posted yet; one unsent


def test_a_job_still_in_redis_is_left_alone(outbox):
    from twitpic.outbox import check_sent

    tweet_ids = outbox.stage(3)
    relay_until_done(outbox)

    assert check_sent(outbox.db, outbox.queue) == (0, "")
    assert outbox.unsent() == []
    assert sorted(outbox.queue.get_job_ids()) == job_ids(tweet_ids)


def test_the_check_goes_through_a_long_outbox_batch_by_batch(outbox, monkeypatch):
    """Each check looks up a batch of sent rows and says where the next starts, so that a long
    outbox (a day's outage) is checked in turn, not only its first rows."""
    from twitpic import outbox as outbox_module

    monkeypatch.setattr(outbox_module, "CHECK_BATCH", 2)
    tweet_ids = sorted(outbox.stage(3))
    relay_until_done(outbox)
    outbox.queue.connection.flushall()

    first = outbox_module.check_sent(outbox.db, outbox.queue)
    second = outbox_module.check_sent(outbox.db, outbox.queue, after=first[1])

    assert first == (2, tweet_ids[1])
    assert second == (1, "")
    assert sorted(outbox.unsent()) == tweet_ids


def test_the_relays_lag_is_how_long_the_oldest_unsent_row_has_waited(outbox):
    from twitpic.outbox import OutboxStatus, outbox_status

    assert outbox_status(outbox.db) == OutboxStatus(unsent=0, sent=0, lag=0.0)
    outbox.stage(2)
    time.sleep(0.3)  # the lag being measured, not a wait for something to happen
    status = outbox_status(outbox.db)
    assert (status.unsent, status.sent) == (2, 0)
    assert 0.3 <= status.lag < 30

    relay_until_done(outbox)
    assert outbox_status(outbox.db) == OutboxStatus(unsent=0, sent=2, lag=0.0)
