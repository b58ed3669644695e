"""The benchmark at a tiny size: it runs both servers, moves every item and writes its rows."""

from __future__ import annotations

import json

import pytest

from lab.bench import kestrel as bench
from lab.runtime.redis_server import NoRedisServer, redis_server_binary


def no_redis_server() -> bool:
    try:
        redis_server_binary()
    except NoRedisServer:
        return True
    return False


pytestmark = pytest.mark.skipif(no_redis_server(), reason="the benchmark compares against redis-server")


def test_the_benchmark_moves_every_item_and_writes_its_rows(capsys):
    rows = bench.run_benchmark(put_many_items=120, clients=7, flood_items=40, rounds=2)
    assert [(row["workload"], row["fsync"], row["server"]) for row in rows] == [
        (workload, fsync, server)
        for workload in ("put-many", "flood")
        for fsync in ("always", "never")
        for server in ("kestrel", "kestrel-asyncio", "redis")]
    for row in rows:
        assert row["moved"] == row["items"] == (120 if row["workload"] == "put-many" else 40)
        assert row["items_per_s"] > 0 and 0 < row["p50_ms"] <= row["p99_ms"]
        assert row["rounds"] == 2
    for row in rows[::3]:  # our server's rows carry the ratios, round by round
        for ratio in (row["ratio_to_redis"], row["event_loop_gain"]):
            assert len(ratio["rounds"]) == 2 and ratio["low"] <= ratio["median"] <= ratio["high"]
            assert ratio["low"] == min(ratio["rounds"]) and ratio["high"] == max(ratio["rounds"])
    printed = capsys.readouterr().out
    assert printed.count("(ratio") == 4 and "items/s" in printed


def test_main_writes_kestrel_json_and_the_printed_table(tmp_path, monkeypatch, capsys):
    def two_rows(*counts):
        return [
            {"server": server, "workload": "put-many", "fsync": "always", "items": 10, "moved": 10,
             "items_per_s": speed, "p50_ms": 1.0, "p99_ms": 2.0}
            for server, speed in (("kestrel", 1), ("kestrel-asyncio", 2), ("redis", 4))
        ]

    monkeypatch.setattr(bench, "run_benchmark", two_rows)
    assert bench.main(["--quick", "--out", str(tmp_path / "out")]) == 0
    rows = json.loads((tmp_path / "out" / "kestrel.json").read_text())
    assert set(rows[0]) >= {"server", "workload", "fsync", "items_per_s", "p50_ms", "p99_ms"}
    table = (tmp_path / "out" / "kestrel.txt").read_text()
    assert table.startswith("put-many  fsync=always kestrel      1 items/s") and "(ratio 0.25)" in table
    assert f"kestrel on asyncio's loop      2 items/s ({bench.EVENT_LOOP} 0.50x)" in table


def test_the_churn_benchmark_times_another_clients_requests_idle_and_under_both_churns():
    from lab.bench import kestrel_churn

    rows, moved = kestrel_churn.run(0.5)
    assert [row["while"] for row in rows] == ["idle", "under churn", "under churn+16"]
    assert all(row["requests"] > 10 and 0 < row["p50_ms"] <= row["p999_ms"] <= row["max_ms"] for row in rows)
    assert list(moved) == ["churn", "churn+16"]
    assert all(count > 0 for count in moved.values())  # each churn really ran while it was timed
