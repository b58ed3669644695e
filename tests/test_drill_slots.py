"""The drill's view of each worker (lab/drill/slots.py), against the stages' real processes: a web
worker or a job worker waiting on a hung Twitter shows as `t`, and as `i` once Twitter answers."""

from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest

from lab.drill.slots import job_worker_pids, slots_probe
from lab.runtime.process import wait_until
from lab.testing.fixtures import running_twitter, twitter  # noqa: F401
from lab.testing.stages import running_stage


@contextmanager
def running(stage_name: str, twitter, tmp_path, job_workers: int = 2):  # noqa: F811
    with running_stage(stage_name, twitter, tmp_path / "data", job_workers) as (site, env, processes):
        yield site, slots_probe(processes["web"].pid, job_worker_pids(processes), env)


def test_a_web_worker_held_by_a_hung_twitter_shows_as_waiting_on_twitter(twitter, tmp_path):  # noqa: F811
    with running("01-naive", twitter, tmp_path) as (site, probe):
        photo = site.new_photo()
        wait_until(lambda: probe() == ("ii", ""), timeout=10, what="two idle web workers, no job worker")
        twitter.set_mode("hang")
        with ThreadPoolExecutor(1) as pool:
            held = pool.submit(site.comment, photo, "held by Twitter", timeout=30)
            wait_until(lambda: sorted(probe()[0]) == ["i", "t"], timeout=10,
                       what="one web worker waiting on Twitter, the other idle")
            twitter.set_mode("up")
            assert held.result(timeout=30).status_code == 303
        wait_until(lambda: probe() == ("ii", ""), timeout=10, what="both web workers idle again")


@pytest.mark.parametrize("stage_name", ["02-db-queue", "03-kestrel", "04-rq"])
def test_a_job_worker_posting_to_a_hung_twitter_shows_as_waiting_on_twitter(
    twitter, tmp_path, stage_name,  # noqa: F811
):
    with running(stage_name, twitter, tmp_path, job_workers=2) as (site, probe):
        photo = site.new_photo()
        # Exactly the two job workers: stage 04's RQ scheduler runs beside them and is not one.
        wait_until(lambda: probe() == ("ii", "ii"), timeout=20, what="idle web and job workers")
        twitter.set_mode("hang")
        assert site.comment(photo, "queued while Twitter hangs").status_code == 303
        # One job worker waits on Twitter; in stage 02, whose naive claim races, both may have
        # taken the one job (the stage's lesson), so both may wait.
        expected = (["i", "t"], ["t", "t"]) if stage_name == "02-db-queue" else (["i", "t"],)
        wait_until(lambda: sorted(probe()[1]) in expected, timeout=20,
                   what="one job worker waiting on Twitter")
        assert probe()[0] == "ii"  # the site itself waits for nobody
        twitter.set_mode("up")
        wait_until(lambda: probe()[1] == "ii", timeout=20, what="the job workers idle again")
