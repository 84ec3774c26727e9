"""A hybrid logical clock (Kulkarni, Demirbas et al., "Logical Physical Clocks", 2014).

A :class:`Stamp` is ``(wall_ms, counter, origin)``. Stamps compare lexicographically, and that
order is the fleet's last-writer-wins order: the later wall time wins, then the higher counter,
then the greater origin string (an arbitrary but fleet-wide deterministic tie-break).

Every stamp an :class:`HLC` hands out is strictly greater than every stamp it handed out or
observed before, even if the wall clock steps backwards; ``wall_ms`` stays close to real time
(it never runs behind the local wall clock, and runs ahead of it only as far as the largest
stamp observed).

A remote stamp more than ``max_skew_ms`` (default one day) ahead of the local wall clock is not
adopted: :meth:`HLC.observe` raises :class:`ClockSkewError` and leaves the clock untouched, so
one camera with a broken RTC cannot drag the whole fleet's clocks into the future (where its
entries would win every merge for as long as the skew lasts). The sync layer should reject and
count the entry that carried such a stamp.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import NamedTuple

from agent.errors import AgentError

__all__ = ["DAY_MS", "HLC", "ClockSkewError", "Stamp", "wall_clock_ms"]

DAY_MS = 24 * 60 * 60 * 1000


class Stamp(NamedTuple):
    """One hybrid-logical-clock timestamp; tuple order is the last-writer-wins order."""

    wall_ms: int
    """The logical wall time, milliseconds since the Unix epoch."""
    counter: int
    """Orders events that share ``wall_ms``."""
    origin: str
    """The id of the agent that issued the stamp; breaks ties between agents."""


class ClockSkewError(AgentError):
    """A remote stamp is too far ahead of the local wall clock to be adopted.

    Raised by :meth:`HLC.observe`; the clock's state is unchanged.
    """

    def __init__(self, remote: Stamp, local_wall_ms: int, max_skew_ms: int) -> None:
        self.remote = remote
        self.local_wall_ms = local_wall_ms
        self.max_skew_ms = max_skew_ms
        self.skew_ms = remote.wall_ms - local_wall_ms
        super().__init__(
            f"stamp from {remote.origin!r} is {self.skew_ms} ms ahead of the local clock "
            f"(limit {max_skew_ms} ms); not adopted"
        )


def wall_clock_ms() -> int:
    """The system wall clock in whole milliseconds since the Unix epoch."""
    return time.time_ns() // 1_000_000


class HLC:
    """A thread-safe hybrid logical clock owned by the agent ``origin``.

    ``now_ms`` is the physical clock (injectable for tests). ``max_skew_ms`` bounds how far
    ahead of it a remote stamp may be and still be adopted by :meth:`observe`.
    """

    def __init__(
        self,
        origin: str,
        now_ms: Callable[[], int] = wall_clock_ms,
        *,
        max_skew_ms: int = DAY_MS,
    ) -> None:
        if not origin:
            raise ValueError("an HLC needs a non-empty origin")
        if max_skew_ms < 0:
            raise ValueError("max_skew_ms must not be negative")
        self.origin = origin
        self.max_skew_ms = max_skew_ms
        self._now_ms = now_ms
        self._lock = threading.Lock()
        self._wall = 0
        self._counter = 0

    @property
    def last(self) -> Stamp:
        """The most recent stamp issued (``(0, 0, origin)`` before the first one)."""
        with self._lock:
            return Stamp(self._wall, self._counter, self.origin)

    def tick(self) -> Stamp:
        """A stamp for a local event (send or local write): greater than any seen so far."""
        with self._lock:
            physical = self._now_ms()
            if physical > self._wall:
                self._wall, self._counter = physical, 0
            else:
                self._counter += 1
            return Stamp(self._wall, self._counter, self.origin)

    def observe(self, remote: Stamp) -> Stamp:
        """Merge a received stamp and return the stamp of the receive event.

        The result is greater than ``remote`` and than every stamp issued before. Raises
        :class:`ClockSkewError` (state unchanged) if ``remote.wall_ms`` is more than
        ``max_skew_ms`` ahead of the physical clock, and ``ValueError`` for a negative wall
        time or counter.
        """
        if remote.wall_ms < 0 or remote.counter < 0:
            raise ValueError(f"invalid stamp {remote!r}: negative wall time or counter")
        with self._lock:
            physical = self._now_ms()
            if remote.wall_ms - physical > self.max_skew_ms:
                raise ClockSkewError(remote, physical, self.max_skew_ms)
            previous = self._wall
            wall = max(previous, remote.wall_ms, physical)
            if wall == previous and wall == remote.wall_ms:
                counter = max(self._counter, remote.counter) + 1
            elif wall == previous:
                counter = self._counter + 1
            elif wall == remote.wall_ms:
                counter = remote.counter + 1
            else:
                counter = 0
            self._wall, self._counter = wall, counter
            return Stamp(wall, counter, self.origin)
