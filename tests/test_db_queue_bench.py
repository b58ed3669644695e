"""`workbook bench db-queue`, tiny: SQLite only, 20 jobs, 1 and 2 workers.

Only what the bench must always get right is checked (every job posted, no duplicates from the
safe strategies, the files it writes), never its timings.
"""

import json

from lab.bench import db_queue
from lab.runtime.process import free_port


def test_a_tiny_run_on_sqlite_posts_every_job(tmp_path, monkeypatch, capsys):
    # No MariaDB listens on a port that was just free: the bench must skip it, not fail.
    monkeypatch.setenv("TWITPIC_TEST_MARIADB_URL", f"mysql://root@127.0.0.1:{free_port()}/test")

    status = db_queue.main(
        ["--backends", "sqlite,mariadb", "--jobs", "20", "--workers", "1,2", "--latency-ms", "5",
         "--out", str(tmp_path)]
    )

    assert status == 0
    output = capsys.readouterr().out
    assert "mariadb: skipped" in output
    written = json.loads((tmp_path / "db-queue.json").read_text())
    rows = written["rows"]
    assert [set(row) for row in rows] == [set(db_queue.ROW_KEYS)] * len(rows)
    # skip-locked is not offered on SQLite
    assert sorted({(row["strategy"], row["workers"]) for row in rows}) == [
        ("atomic", 1), ("atomic", 2), ("locked", 1), ("locked", 2), ("locked-claim", 1), ("locked-claim", 2),
        ("naive", 1), ("naive", 2),
    ]
    # Where the claim-only lock must stop growing, from the time it is held per claim.
    assert list(written["claim_lock_ms"]) == ["sqlite"] and written["claim_lock_ms"]["sqlite"] > 0
    assert "sqlite: the claim lock is held" in output
    assert {row["backend"] for row in rows} == {"sqlite"}
    for row in rows:
        assert row["lost"] == 0, row
        assert row["jobs_per_s"] > 0, row
        if row["strategy"] != "naive":
            assert row["duplicates"] == 0, row

    markdown = (tmp_path / "db-queue.md").read_text()
    assert "| backend | strategy | workers | jobs/s | duplicates | lost | vs 1 worker |" in markdown
    assert "Skipped: mariadb" in markdown
    assert "20 jobs per run, fake Twitter latency 5 ms" in markdown
    assert "- sqlite: the claim lock is held" in markdown
