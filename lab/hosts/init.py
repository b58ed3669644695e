"""The world's first process (PID 1 of its PID namespace): start the lab, pass signals on, reap.

Every process whose parent dies is handed to PID 1, which must collect its exit or leave a zombie.
When the lab exits, so does this, and the kernel kills whatever is left in the namespace.

    python -m lab.hosts.init COMMAND...
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys


def main(argv: list[str]) -> int:
    # In a session of its own, the lab gets the terminal's Ctrl-C once: from here.
    lab = subprocess.Popen(argv, start_new_session=True)

    def pass_on(signum, frame):
        os.kill(lab.pid, signum)  # not Popen.send_signal, which could reap the lab before os.wait does

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, pass_on)
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            return 1
        if pid == lab.pid:
            return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
