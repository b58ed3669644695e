"""`workbook bench rq-recovery`: a killed job worker's tweet, recovered by stage 03's reliable read
and by RQ's own handling in stage 04, measured side by side (the quick run: time scale 0.1)."""

import json

import pytest

from lab.bench import rq_recovery


@pytest.mark.long  # a minute and more of waiting for RQ's heartbeat: run by `make test-long`
def test_rq_recovers_a_killed_job_workers_tweet_within_the_bound_its_settings_give(tmp_path, capsys):
    assert rq_recovery.main(["--quick", "--out", str(tmp_path)]) == 0

    rows = {row["setup"]: row for row in json.loads((tmp_path / "rq-recovery.json").read_text())}
    assert set(rows) == set(rq_recovery.SETUPS)
    assert all(row["posted"] == 1 for row in rows.values())  # recovered, and posted once
    # Killed with its horse, a job cannot be found before its heartbeat has run out: RQ's 60 s.
    assert rq_recovery.RQ_HEARTBEAT_GRACE_S <= rows["04-crash"]["recovery_s"] <= rows["04-crash"]["bound_s"] + 10
    assert rows["04-worker-killed"]["recovery_s"] <= rows["04-worker-killed"]["bound_s"] + 5
    assert rows["03-worker-killed"]["recovery_s"] < rows["04-crash"]["recovery_s"] / 10
    printed = capsys.readouterr().out
    assert (tmp_path / "rq-recovery.txt").read_text().strip() in printed


def test_unknown_setups_are_refused(capsys):
    with pytest.raises(SystemExit):
        rq_recovery.main(["--setups", "04-crash,celery"])
    assert "--setups takes some of 03-worker-killed, 04-worker-killed, 04-crash" in capsys.readouterr().err
