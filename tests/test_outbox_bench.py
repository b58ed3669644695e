"""`workbook bench outbox`: comment to tweet in stage 04 and stage 05 side by side, and one relay's
rows per second (the quick run)."""

import json

import pytest

from lab.bench import outbox


@pytest.mark.long  # four whole stages started and stopped: run by `make test-long`
def test_the_bench_times_both_stages_and_the_relay_and_prints_what_it_measured(tmp_path, capsys):
    assert outbox.main(["--quick", "--out", str(tmp_path)]) == 0

    found = json.loads((tmp_path / "outbox.json").read_text())
    assert set(found["delays"]) == {"04-rq", "05-outbox"}
    for stage, delays in found["delays"].items():
        assert len(delays) == found["comments"] * found["rounds"], stage
        assert all(0 < delay < 30 for delay in delays), stage  # each tweet arrived after its comment was sent
    assert len(found["relay_rows_per_second"]) == found["rounds"]
    assert all(rate > 0 for rate in found["relay_rows_per_second"])
    assert (tmp_path / "outbox.txt").read_text().strip() in capsys.readouterr().out
