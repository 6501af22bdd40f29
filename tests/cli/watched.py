"""A ``relayminer`` command run as a real process, its stderr followed line by line."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest


class Watched:
    """A command as the leader of its own process group, its stderr read by a thread."""

    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "relayminer", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,  # its own process group, like a terminal's foreground job
            env={**os.environ, "COLUMNS": "120"},
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._eof = False
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._eof = True
            self._changed.notify_all()

    @property
    def stderr(self) -> str:
        with self._changed:
            return "".join(self.lines)

    def wait_for_line(self, needle: str, timeout: float = 60.0) -> str:
        def found() -> str | None:
            return next((line for line in self.lines if needle in line), None)

        with self._changed:
            self._changed.wait_for(lambda: found() is not None or self._eof, timeout)
            line = found()
        if line is None:
            pytest.fail(f"no {needle!r} (exit code {self.proc.poll()}):\n{self.stderr}")
        return line

    def finish(self, timeout: float = 60.0) -> tuple[int, str]:
        """Wait for the exit; returns the code and stdout (stderr complete afterwards)."""
        assert self.proc.stdout is not None
        out = self.proc.stdout.read()  # (communicate() would race the stderr thread)
        self.proc.wait(timeout=timeout)
        with self._changed:
            self._changed.wait_for(lambda: self._eof, timeout)
        return self.proc.returncode, out
