"""`workbook doctor` on a machine missing `nc`, Chromium and a port the chapters use: a fix for
each, and a non-zero exit."""

import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_each_miss_gets_its_fix_and_the_doctor_exits_non_zero(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = {key: value for key, value in os.environ.items() if key != "WORKBOOK_CHROMIUM"}
        env["PATH"] = str(tmp_path)  # no nc, no Chromium
        doctor = subprocess.run([sys.executable, "-m", "lab", "doctor", "--port", str(port)], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=120)
    said = doctor.stdout
    assert doctor.returncode == 1, said + doctor.stderr
    assert "MISS  `nc` is missing: the chapters' explorations use it\n" \
           "        fix: Debian/Ubuntu: sudo apt install netcat-openbsd; macOS has it" in said
    assert "MISS  Chromium is missing: `make test` checks the site's pages in it\n" \
           "        fix: install it (Debian/Ubuntu: sudo apt-get install chromium" in said
    assert f"MISS  port {port} is taken by python" in said  # this test's own process holds it
    assert f"fix: stop that program (`lsof -i :{port}` names it)" in said


def test_a_machine_with_everything_is_told_so(tmp_path):
    for tool in ("nc", "sqlite3", "lsof", "curl", "chromium"):
        fake = tmp_path / tool
        fake.write_text("#!/bin/sh\n")
        fake.chmod(0o755)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"}
    env.pop("WORKBOOK_CHROMIUM", None)
    doctor = subprocess.run([sys.executable, "-m", "lab", "doctor", "--port", str(port)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert doctor.returncode == 0, doctor.stdout
    assert "MISS" not in doctor.stdout
    assert doctor.stdout.rstrip().endswith("Everything the chapters need is here.")
