"""`workbook bench rq-enqueue`: RQ enqueues into Redis with no append-only file, one synced every
second, and one synced on every write, side by side (the quick run)."""

import json

from lab.bench import rq_enqueue


def test_the_bench_enqueues_into_each_redis_and_prints_what_it_measured(tmp_path, capsys):
    assert rq_enqueue.main(["--quick", "--out", str(tmp_path)]) == 0

    rows = {row["appendfsync"]: row for row in json.loads((tmp_path / "rq-enqueue.json").read_text())}
    assert set(rows) == {"off", "everysec", "always"}
    assert all(row["jobs_per_s"] > 0 and len(row["rounds"]) == 3 for row in rows.values())
    assert rows["off"]["ratio_to_off"] == 1.0
    assert (tmp_path / "rq-enqueue.txt").read_text().strip() in capsys.readouterr().out
