"""Logging a repeated error once per interval, with a count, instead of once per loop iteration.

A background loop (the outbox, housekeeping) that retries every half second during a database outage
would otherwise log a full traceback every half second.  With :class:`LogThrottle` the first occurrence
of an error is logged with its traceback; identical ones (same message, exception type and text) within
``interval`` seconds are only counted, and reported in one line when the interval has passed and the
error happens again, when another error replaces it, or when the loop reports success::

    throttle = LogThrottle(log, interval=60.0)
    while True:
        try:
            await step()
        except Exception as exc:
            throttle.failure("housekeeping failed", exc)
        else:
            throttle.success()
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["LogThrottle"]

MAX_KEYS = 64  # distinct errors followed at once; the oldest is summarised and forgotten beyond


@dataclass
class _Seen:
    message: str
    since: float  # when it was last logged
    count: int = 0  # occurrences since, not logged


class LogThrottle:
    def __init__(
        self, logger: logging.Logger, interval: float = 60.0, *, level: int = logging.ERROR, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.logger, self.interval, self.level, self.clock = logger, interval, level, clock
        self._seen: dict[tuple[str, str, str], _Seen] = {}

    def failure(self, message: str, exc: BaseException | None = None) -> bool:
        """Report one occurrence; returns True if it was logged now (with the traceback if it is new)."""
        key = (message, type(exc).__name__ if exc is not None else "", str(exc)[:200] if exc is not None else "")
        now = self.clock()
        seen = self._seen.get(key)
        if seen is None:
            if len(self._seen) >= MAX_KEYS:
                self._flush(next(iter(self._seen)), "")
            self._seen[key] = _Seen(message, now)
            self.logger.log(self.level, "%s", message, exc_info=exc if exc is not None else None)
            return True
        seen.count += 1
        if now - seen.since < self.interval:
            return False
        self.logger.log(self.level, "%s (%d times in the last %.0f s): %s", message, seen.count, now - seen.since, _brief(exc))
        seen.since, seen.count = now, 0
        return True

    def success(self) -> None:
        """The operation works again: summarise what was not logged, and forget every error."""
        for key in list(self._seen):
            self._flush(key, "; recovered")

    @property
    def suppressed(self) -> int:
        """Occurrences counted but not logged yet."""
        return sum(seen.count for seen in self._seen.values())

    def _flush(self, key: tuple[str, str, str], suffix: str) -> None:
        seen = self._seen.pop(key)
        if seen.count:
            error = f"{key[1]}: {key[2]}" if key[1] else ""
            self.logger.log(self.level, "%s (%d more times in %.0f s%s)%s", seen.message, seen.count,
                            self.clock() - seen.since, suffix, f": {error}" if error else "")
        elif suffix:
            self.logger.info("%s: recovered", seen.message)


def _brief(exc: BaseException | None) -> str:
    return f"{type(exc).__name__}: {exc}" if exc is not None else "-"
