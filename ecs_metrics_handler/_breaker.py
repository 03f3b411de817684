"""The outage breaker: after the cluster stops answering, try it only at growing intervals.

While the breaker is open (the cluster is down), live batches are not sent one by one into a
dead cluster: they go to the failure folder, and one request now and then (a probe: the next
batch, or a spooled segment) tests whether the cluster is back. Each failed probe doubles the
interval, from ``initial`` up to ``maximum`` seconds; the first answer closes the breaker.

Pure state and arithmetic on a clock the caller passes in; not thread-safe (the sender thread
owns it).
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["OutageBreaker"]


class OutageBreaker:
    """Whether a request to the cluster may be tried now, and when the next probe is due.

    ``clock`` returns seconds (monotonic); ``initial`` and ``maximum`` are the first and the
    largest interval between probes, in seconds.
    """

    def __init__(self, initial: float, maximum: float, clock: Callable[[], float]) -> None:
        self._initial = initial
        self._maximum = maximum
        self._clock = clock
        self.down = False
        #: clock time from which the next probe may go (meaningful while ``down``)
        self.next_probe = 0.0
        self._interval = initial

    def allows_request(self) -> bool:
        """Whether a request may go now: the cluster is up, or a probe is due."""
        return not self.down or self._clock() >= self.next_probe

    def seconds_to_probe(self) -> float:
        """Seconds until the next probe is due (0 when the cluster is up or a probe is due)."""
        if not self.down:
            return 0.0
        return max(0.0, self.next_probe - self._clock())

    def answered(self) -> bool:
        """The cluster answered: close the breaker. Returns whether it was open."""
        was_down = self.down
        self.down = False
        self._interval = self._initial
        return was_down

    def failed(self) -> None:
        """A request (or probe) found the cluster unavailable: open, or lengthen the interval."""
        if self.down:
            self._interval = min(self._maximum, self._interval * 2)
        self.down = True
        self.next_probe = self._clock() + self._interval
