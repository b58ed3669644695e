"""Drive a fake Twitter from Python: start it on free ports, switch modes, read the ledger, stop it.

Used by the tests, the drill and `workbook up`. It speaks to the server over HTTP only, exactly as
a trainer would with curl.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping

import requests

from lab.runtime.process import LOCALHOST, ManagedProcess, free_port
from lab.runtime.timescale import ENV_VAR as TIME_SCALE_ENV

CONTROL_TIMEOUT = 5.0  # seconds; the control routes answer at once even while hanging
SETTLE_SECONDS = 10.0  # how long a finished drain may take to go quiet


class FakeTwitter:
    def __init__(self, api_url: str, control_url: str, process: ManagedProcess | None = None):
        self.api_url = api_url.rstrip("/")
        self.control_url = control_url.rstrip("/")
        self.process = process
        self._http = requests.Session()

    @classmethod
    def start(
        cls,
        *,
        latency_ms: tuple[int, int] = (0, 0),
        mode: str = "up",
        fail_rate: float = 0.3,
        seed: int | None = None,
        reject_duplicates: bool = False,
        users: Mapping[str, str] | None = None,
        time_scale: float | None = None,
        host: str = LOCALHOST,
        port: int | None = None,
        control_port: int | None = None,
        timeout: float = 15.0,
    ) -> "FakeTwitter":
        """Run `workbook twitter` as a subprocess and wait until it answers."""
        port = port or free_port(host)
        control_port = control_port or free_port(host)
        argv = [
            sys.executable, "-m", "lab", "twitter",
            "--host", host, "--port", str(port), "--control-port", str(control_port),
            "--latency-ms", f"{latency_ms[0]}-{latency_ms[1]}",
            "--mode", mode, "--fail-rate", str(fail_rate),
        ]
        if seed is not None:
            argv += ["--seed", str(seed)]
        if reject_duplicates:
            argv.append("--reject-duplicates")
        for name, token in (users or {}).items():
            argv += ["--user", f"{name}={token}"]
        env = {TIME_SCALE_ENV: repr(time_scale)} if time_scale is not None else None
        twitter = cls(f"http://{host}:{port}", f"http://{host}:{control_port}")
        twitter.process = ManagedProcess(
            "twitter", argv, env=env, host=host, port=control_port, ready=twitter.answers
        )
        twitter.process.start(timeout=timeout)
        return twitter

    # -- the API and the control routes -----------------------------------------------------

    @property
    def port(self) -> int:
        return int(self.api_url.rsplit(":", 1)[1])

    @property
    def control_port(self) -> int:
        return int(self.control_url.rsplit(":", 1)[1])

    @property
    def tweets_url(self) -> str:
        return f"{self.api_url}/2/tweets"

    def answers(self) -> bool:
        try:
            return self._http.get(f"{self.control_url}/_control", timeout=0.5).ok
        except requests.RequestException:
            return False

    def _call(self, method: str, path: str, json=None) -> dict:
        response = self._http.request(
            method, f"{self.control_url}{path}", json=json, timeout=CONTROL_TIMEOUT
        )
        response.raise_for_status()
        return response.json()

    def control(self, **changes) -> dict:
        """Change `mode`, `latency_ms` ([lo, hi]), `fail_rate`, `reject_duplicates`, `retry_after`;
        the new state."""
        if "latency_ms" in changes:
            changes["latency_ms"] = list(changes["latency_ms"])
        return self._call("POST", "/_control", json=changes)

    def set_mode(self, mode: str) -> dict:
        return self.control(mode=mode)

    def state(self) -> dict:
        return self._call("GET", "/_control")

    def ledger(self) -> list[dict]:
        return self._call("GET", "/_ledger")["tweets"]

    def tweets_starting_with(self, prefixes, seconds: float = 0.0, idle=None) -> dict[str, list[dict]]:
        """The tweets whose text starts with each prefix (then a space, as the site adds a link).

        Waits up to `seconds` for every prefix to have at least one tweet: background workers
        may still be draining a backlog. With `idle` (a function: is the stage's background work
        done?), it also waits until the system has settled: `idle()` is true and no call is in
        flight here. Only then is the ledger read for the answer, so a second delivery that lands
        a moment after the first is counted, not missed. A settled system posts nothing more, so
        a tweet still missing then is lost for good, and the wait ends there. A system that does
        not settle within `seconds` (or SETTLE_SECONDS more) fails with AssertionError.
        """
        deadline = time.monotonic() + seconds
        while True:
            found = self._tweets_by_prefix(prefixes)
            if all(found.values()) or time.monotonic() >= deadline:
                break
            if idle is not None and self._settled(idle):
                return self._tweets_by_prefix(prefixes)  # settled with some missing: they stay missing
            time.sleep(0.05)
        if idle is None:
            return found
        deadline = max(deadline, time.monotonic() + SETTLE_SECONDS)
        while not self._settled(idle):
            if time.monotonic() >= deadline:
                busy = "idle" if idle() else "still busy (jobs waiting, or held by a worker)"
                raise AssertionError(
                    f"the system did not settle: {self.stats()['in_flight']} calls in flight, the stage {busy}")
            time.sleep(0.05)
        # Idle now, and nothing on its way to Twitter: what the ledger says is the whole outcome.
        return self._tweets_by_prefix(prefixes)

    def _settled(self, idle) -> bool:
        return self.stats()["in_flight"] == 0 and idle()

    def _tweets_by_prefix(self, prefixes) -> dict[str, list[dict]]:
        ledger = self.ledger()
        return {p: [t for t in ledger if t["text"].startswith(p + " ")] for p in prefixes}

    def stats(self) -> dict:
        return self._call("GET", "/_stats")

    def reset(self) -> dict:
        return self._call("POST", "/_reset")

    def users(self) -> dict[str, str]:
        """username -> token"""
        return {user["username"]: user["token"] for user in self._call("GET", "/_users")["users"]}

    # -- stopping ---------------------------------------------------------------------------

    def stop(self) -> None:
        self._http.close()
        if self.process is not None:
            self.process.stop()
            self.process.remove_log()

    def __enter__(self) -> "FakeTwitter":
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()
