"""The lab of hosts' verdicts, from results made by hand: what counts as lost, held or stranded,
which promises a run broke, and how the command says so. No hosts are built here."""

from collections import Counter
from types import SimpleNamespace

import pytest

from lab.hosts import cli, report, scale_out, world
from lab.hosts.reconcile import Watch, reconcile, tweets_by_host, waits_to_run
from lab.hosts.verdicts import broken_promises, verdict_lines
from lab.runtime.process import wait_until

DEFAULTS = "aof, client-retry, idempotent-record, noeviction, supervisor"


def result(stage="05-outbox", defences=DEFAULTS, lost=(), duplicated=(), held=None, stranded=None):
    return {
        "stage": stage, "scenario": "failover", "quick": True, "comments": 10, "accepted": 10,
        "lost": list(lost), "duplicated": list(duplicated), "repeats_refused": 0,
        "held": held or {}, "stranded": stranded or {}, "recovery": 2.5, "refused": {},
        "exits": {"w1:worker": 2}, "defences": defences,
    }


def test_a_comment_without_a_tweet_is_lost_only_when_its_job_is_nowhere():
    accepted = {1, 2, 3, 4, 5}
    counts = Counter({1: 1})
    where = {"started": {2}, "outbox": {2, 3}, "failed": {4}, "queued": set()}
    lost, held, stranded = reconcile(accepted, counts, where)
    assert lost == [5]
    assert held == {"started": [2], "outbox": [2, 3]}
    assert stranded == {"failed": [4]}


def test_a_quick_run_stops_waiting_for_jobs_rq_holds_and_a_full_run_does_not():
    untweeted = {1, 2, 3, 4}
    where = {"started": {1}, "intermediate": {2}, "outbox": {1, 3}, "failed": {4}}
    # Comment 3 is in the outbox with no job: the relay will queue it soon, so both wait for it.
    assert waits_to_run(untweeted, where, quick=True) == {3}
    assert waits_to_run(untweeted, where, quick=False) == {1, 2, 3}
    assert waits_to_run({4}, where, quick=False) == set()  # failed: only a person moves it


def test_a_job_waiting_in_two_places_is_held_once():
    lines = verdict_lines(result(held={"started": [7], "outbox": [7]}))
    assert lines[0] == ("failover on 05-outbox [aof, client-retry, idempotent-record, noeviction, supervisor]: "
                        "lost 0, duplicated 0, held 1, stranded 0")
    assert "  held (started): comment 7" in lines and "  held (outbox): comment 7" in lines


@pytest.mark.parametrize(("stage", "lost", "duplicated", "broken"), [
    ("05-outbox", [3, 4], [], ["lost 2"]),
    ("05-outbox", [], [9], ["duplicated 1"]),
    ("04-rq", [3, 4], [], []),  # stage 04 does not promise that a comment saved keeps its tweet
    ("04-rq", [], [9], ["duplicated 1"]),
])
def test_each_stage_is_held_to_its_own_promises(stage, lost, duplicated, broken):
    found = result(stage=stage, lost=lost, duplicated=duplicated)
    assert broken_promises(found) == broken
    last = verdict_lines(found)[-1]
    assert last.startswith("  promises: BROKEN, " + ", ".join(broken)) if broken else last.startswith(
        "  promises: kept")


def test_a_stranded_job_breaks_a_promise():
    assert broken_promises(result(stranded={"failed": [4]})) == ["stranded 1"]


def test_with_a_shipped_defence_switched_off_nothing_is_promised():
    found = result(defences="aof, client-retry, idempotent-record, noeviction", lost=[1, 2])  # no supervisor
    assert broken_promises(found) == []
    assert verdict_lines(found)[-1] == "  promises: not checked, a defence the stage ships with is off"
    # A defence switched on beyond the shipped ones keeps the promises checked.
    everything = "aof, client-retry, idempotent-record, min-replicas, noeviction, supervisor"
    assert broken_promises(result(defences=everything, lost=[1])) == ["lost 1"]


def test_the_verdict_names_the_ids_of_what_broke():
    lines = verdict_lines(result(stage="04-rq", lost=list(range(30, 40)), duplicated=[12]))
    assert "  lost: comment 30, comment 31, comment 32, comment 33, comment 34, comment 35, comment 36, " \
           "comment 37, ..." in lines
    assert "  duplicated: comment 12" in lines


def test_the_verdict_shows_a_job_worker_host_that_posted_nothing_after_the_fault():
    lines = verdict_lines({**result(), "tweets_by_host": {"w1": 137, "w2": 0}})
    assert "  tweets after the fault, by job worker host: w1 137, w2 0" in lines
    on_loopback = verdict_lines({**result(), "tweets_by_host": None})
    assert not [line for line in on_loopback if "by job worker host" in line]


def site_with_tweets(addresses: dict[str, str], tweets: list[tuple[str, str]]):
    """A site whose job worker hosts have these addresses, and a fake Twitter with these tweets,
    each (received_at, sender)."""
    ledger = [{"received_at": at, "sender": sender} for at, sender in tweets]
    hosts = [SimpleNamespace(name=name, address=address) for name, address in addresses.items()]
    return SimpleNamespace(worker_hosts=hosts, twitter=SimpleNamespace(ledger=lambda: ledger))


def test_tweets_after_a_moment_are_counted_by_the_host_they_came_from():
    tweets = [("2026-12-07T10:00:00.000+00:00", "10.77.0.3"), ("2026-12-07T10:00:02.000+00:00", "10.77.0.3"),
              ("2026-12-07T10:00:03.000+00:00", "10.77.0.3"), ("2026-12-07T10:00:03.500+00:00", "10.77.0.30")]
    since = 1796637601.0  # 10:00:01 that day, UTC
    site = site_with_tweets({"w1": "10.77.0.3", "w2": "10.77.0.4"}, tweets)
    assert tweets_by_host(site, since) == {"w1": 2, "w2": 0}
    # Every host on 127.0.0.1 (--loopback): the address does not say which host posted.
    assert tweets_by_host(site_with_tweets({"w1": "127.0.0.1", "w2": "127.0.0.1"}, tweets), since) is None


def test_the_watch_s_last_sample_is_taken_when_it_stops():
    """A run waits for the servers to agree, then stops the watch: its last sample must say what
    the wait saw, not what the servers said up to a second before."""
    said = {"r1": "master"}
    watch = Watch(site=None, started=0.0)
    watch.sample = lambda: [said["r1"]]  # what the servers say now
    watch.start()
    wait_until(lambda: watch.samples, timeout=10, what="a first sample")
    said["r1"] = "slave"  # the Sentinels make the old primary a replica; the run's wait sees it
    assert watch.stop()[-1] == ["slave"]


def test_the_scale_out_verdict_gives_each_rounds_drain_and_speed_up():
    found = {"stage": "04-rq", "scenario": "scale-out", "batch": 60, "lost": [], "duplicated": [], "stranded": {},
             "defences": DEFAULTS, "rounds": [
                 {"hosts": 1, "drain": 14.4, "per_second": 4.2},
                 {"hosts": 2, "drain": 7.7, "per_second": 8.4},
             ]}
    lines = scale_out.verdict_lines(found)
    assert lines[0] == ("scale-out on 04-rq: 60 tweets drained by 1 host 14.4 s (4.2/s, x1.0); "
                        "2 hosts 7.7 s (8.4/s, x2.0)")
    assert lines[-1] == "  promises: kept (none duplicated, none stranded)"


def test_publishing_runs_the_committed_set_only(capsys):
    assert cli.main(["--publish", "--with", "min-replicas"]) == 2
    assert "--publish runs the committed set as it is" in capsys.readouterr().err


def test_only_the_command_itself_runs_inside_its_world(capsys):
    assert cli.main(["--inside"]) == 2
    assert "--inside is for the command's own run" in capsys.readouterr().err


def test_the_results_page_shows_every_round_of_a_full_scale_out_run():
    rounds = [{"hosts": hosts, "drain": 80 / hosts, "per_second": 4 * hosts} for hosts in scale_out.FULL_ROUNDS]
    runs = [{"stage": stage, "rounds": rounds} for stage in ("04-rq", "05-outbox")]
    rows = report.scale_out_table(runs)[2:]
    assert [row.split(" | ")[0] for row in rows] == [f"| {hosts}" for hosts in scale_out.FULL_ROUNDS]


def test_the_verdict_says_how_many_lost_tweets_the_web_request_logged():
    lines = verdict_lines({**result(stage="04-rq", lost=[3, 4, 5]), "lost_logged": [3]})
    assert lines[0].startswith(f"failover on 04-rq [{DEFAULTS}]: lost 3 (1 logged), ")


def test_without_namespaces_the_command_says_why_and_offers_the_loopback_scenarios(monkeypatch, capsys):
    monkeypatch.setattr(world, "why_not", lambda: "the lab of hosts needs Linux network namespaces")
    assert cli.main(["--scenario", "failover", "--quick"]) == 2
    said = capsys.readouterr().err
    assert "needs Linux network namespaces" in said
    assert "workbook hosts --loopback --scenario failover (or memory-full, restart, worker-pause, scale-out)" \
        in said


@pytest.mark.parametrize(("argv", "said"), [
    (["--scenario", "partition"], "partition cuts a host off the network"),
    (["--scenario", "worker-cut"], "worker-cut cuts a host off the network"),
    (["--publish"], "the committed set runs on a network of hosts"),
])
def test_loopback_refuses_what_needs_a_network_of_hosts(argv, said, capsys):
    assert cli.main(["--loopback", *argv]) == 2
    assert said in capsys.readouterr().err
