"""`workbook bench rq-recovery`: a killed RQ worker's job, recovered by stage 04's supervisor and by
RQ alone, measured side by side (the quick run: time scale 0.1, idle workers waking every 10 s)."""

import json

import pytest

from lab.bench import rq_recovery


@pytest.mark.long  # a minute and more of waiting for RQ alone: run by `make test-long`
def test_the_supervisor_recovers_a_killed_workers_job_long_before_rq_alone(tmp_path, capsys):
    assert rq_recovery.main(["--quick", "--out", str(tmp_path)]) == 0

    rows = {row["setup"]: row for row in json.loads((tmp_path / "rq-recovery.json").read_text())}
    assert set(rows) == {"supervisor", "rq-alone"}
    assert all(row["posted"] == 1 for row in rows.values())  # recovered, and posted once
    # RQ alone cannot find the job before its heartbeat has run out; the supervisor does not wait.
    assert rows["rq-alone"]["recovery_s"] >= rows["rq-alone"]["heartbeat_s"]
    assert rows["supervisor"]["recovery_s"] < rows["rq-alone"]["heartbeat_s"] / 4
    printed = capsys.readouterr().out
    assert (tmp_path / "rq-recovery.txt").read_text().strip() in printed


def test_unknown_setups_are_refused(capsys):
    import pytest

    with pytest.raises(SystemExit):
        rq_recovery.main(["--setups", "supervisor,celery"])
    assert "--setups takes some of supervisor, rq-alone" in capsys.readouterr().err
