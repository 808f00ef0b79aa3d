"""Whether Redis answers, as one :class:`~.redis_state.RedisState` sees it: :class:`Health`.

An outage begins when a command fails and ends when a command is answered; each change is
reported once, so an outage gives one warning. Commands overlap (callers' threads, event
loops, the background sender), and their results come back out of order: a command sent
before the outage began may still be answered after another command's failure began it, and
a probe sent during the outage may fail after another probe has ended it. Such a result is
older than the state it would change, so it must not change it. Each change of state opens a
new *epoch*; a command notes the epoch it is sent in (:meth:`Health.begin`), and only a
result from the current epoch counts.
"""

from __future__ import annotations

import threading
import time

__all__ = ["Health"]


class Health:
    """Up or down, with the epoch each command was sent in (see the module docstring)."""

    def __init__(self, retry_interval: float) -> None:
        self.retry_interval = retry_interval
        self.down = False
        self._until = 0.0  # while down: no command before this (monotonic) time
        self._epoch = 0
        self._lock = threading.Lock()

    def available(self) -> bool:
        """Whether a command may be sent now (up, or down past the retry interval)."""
        return not self.down or time.monotonic() >= self._until

    def begin(self) -> int | None:
        """The epoch a command is sent in; None while resting after a failure."""
        epoch = self._epoch  # read first: a change after this makes the result stale
        return epoch if self.available() else None

    def failed(self, epoch: int) -> bool:
        """A command sent in ``epoch`` failed; True when that begins an outage."""
        with self._lock:
            if epoch != self._epoch:  # sent before the last change: it has no say
                return False
            self._until = time.monotonic() + self.retry_interval
            if self.down:
                return False
            self.down = True
            self._epoch += 1
            return True

    def answered(self, epoch: int) -> bool:
        """A command sent in ``epoch`` was answered; True when that ends an outage."""
        if not self.down:
            return False
        with self._lock:
            if not self.down or epoch != self._epoch:
                return False
            self.down = False
            self._epoch += 1
            return True
