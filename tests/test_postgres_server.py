"""The embedded PostgreSQL (lab/runtime/postgres_server.py): stage 02's tests and benchmark get a real
PostgreSQL on a machine with no server, never run PostgreSQL as root, and leave nothing behind."""

import os
from pathlib import Path

import psutil
import psycopg
import pytest

from lab.runtime import databases, postgres_server
from lab.runtime.postgres_server import NoPostgres, PostgresServer

URL_VARIABLE = databases.SERVER_URL_VARIABLES["postgresql"]


def test_the_embedded_server_answers_and_stops(tmp_path):
    with PostgresServer(tmp_path / "pg") as server:
        assert server.version().startswith("18.")
        with psycopg.connect(server.url) as connection:
            assert connection.execute("SELECT current_user").fetchone() == ("postgres",)
            assert connection.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
            assert connection.execute("SHOW unix_socket_directories").fetchone() == ("",)  # TCP only
        pid = server.process.pid
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_as_root_it_runs_as_nobody_in_a_user_namespace(tmp_path):
    """PostgreSQL refuses root. For root, the lab starts it where it is `nobody`; as anyone else,
    as that user, unchanged."""
    with PostgresServer(tmp_path / "pg") as server:
        uid_map = Path(f"/proc/{server.process.pid}/uid_map").read_text().split()
        if os.geteuid() == 0:
            nobody = postgres_server.pwd.getpwnam("nobody").pw_uid
            assert uid_map == [str(nobody), "0", "1"]  # nobody inside is root outside, and no one else
        else:
            assert uid_map == ["0", "0", "4294967295"]  # the machine's own namespace


def test_root_without_unshare_is_told_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setattr(postgres_server.os, "geteuid", lambda: 0)
    monkeypatch.setenv("PATH", str(tmp_path))  # no unshare on it
    with pytest.raises(NoPostgres, match=f"run the tests as a user, or name a server with {URL_VARIABLE}"):
        postgres_server.as_ordinary_user(["postgres"])


def test_a_platform_without_the_wheel_is_told_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setattr(postgres_server, "EMBEDDED", "no-such-wheel")
    with pytest.raises(NoPostgres, match=f"no no-such-wheel wheel for this platform.*{URL_VARIABLE}"):
        PostgresServer(tmp_path / "pg")


def test_a_server_you_name_is_used_and_nothing_is_started(monkeypatch, tmp_path):
    monkeypatch.setenv(URL_VARIABLE, "postgresql://someone@127.0.0.1:1/theirs")
    before = psutil.Process().children(recursive=True)
    with databases.embedded_postgresql(tmp_path) as version:
        assert version is None
        assert os.environ[URL_VARIABLE] == "postgresql://someone@127.0.0.1:1/theirs"
        assert psutil.Process().children(recursive=True) == before
    assert not (tmp_path / "postgresql").exists()


def test_unnamed_the_embedded_server_serves_private_databases(monkeypatch, tmp_path):
    monkeypatch.delenv(URL_VARIABLE, raising=False)
    with databases.embedded_postgresql(tmp_path) as version:
        assert version.startswith("18.")
        assert databases.unreachable_reason("postgresql") is None
        with databases.private_database("postgresql", tmp_path) as url:
            with psycopg.connect(url) as connection:
                assert connection.execute("SELECT 1").fetchone() == (1,)
    assert URL_VARIABLE not in os.environ  # the variable goes with the server


def test_without_the_wheel_the_skip_says_why(monkeypatch, tmp_path):
    monkeypatch.delenv(URL_VARIABLE, raising=False)
    monkeypatch.setattr(postgres_server, "EMBEDDED", "no-such-wheel")
    monkeypatch.setattr(databases, "DEFAULT_SERVER_URLS", {**databases.DEFAULT_SERVER_URLS,
                                                           "postgresql": "postgresql://postgres@127.0.0.1:1/x"})
    monkeypatch.setattr(databases, "_embedded_problem", {})
    with databases.embedded_postgresql(tmp_path) as version:
        assert version is None
        reason = databases.unreachable_reason("postgresql")
    assert "no no-such-wheel wheel for this platform" in reason
    assert f"set {URL_VARIABLE}" in reason
