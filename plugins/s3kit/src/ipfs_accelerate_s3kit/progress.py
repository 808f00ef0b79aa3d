"""A progress bar on stderr when it is a terminal (quiet otherwise), stdlib only."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """Files and bytes done out of a total, redrawn at most ten times a second."""

    def __init__(self, label: str, files: int, total_bytes: int, out: TextIO | None = None) -> None:
        self.out = out if out is not None else sys.stderr
        self.enabled = bool(getattr(self.out, "isatty", lambda: False)())
        self.label = label
        self.files = files
        self.total = total_bytes
        self.done_files = 0
        self.done_bytes = 0
        self._lock = threading.Lock()
        self._drawn = 0.0

    def advance(self, size: int) -> None:
        """One more file of ``size`` bytes is done (uploaded, downloaded or skipped)."""
        with self._lock:
            self.done_files += 1
            self.done_bytes += size
            now = time.monotonic()
            if self.enabled and (now - self._drawn >= 0.1 or self.done_files == self.files):
                self._drawn = now
                self._draw()

    def _draw(self) -> None:
        width = 30
        share = self.done_bytes / self.total if self.total else self.done_files / max(1, self.files)
        filled = int(width * min(1.0, share))
        bar = "#" * filled + "-" * (width - filled)
        mib = self.done_bytes / 1048576
        self.out.write(
            f"\r{self.label} [{bar}] {self.done_files}/{self.files} files, {mib:.1f} MiB"
        )
        if self.done_files == self.files:
            self.out.write("\n")
        self.out.flush()
