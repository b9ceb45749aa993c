"""What the scheduler holds back from, for a while: nodes that did not claim what it sent them,
and a message broker it could not reach.

Both are memory of this scheduler only: a new one starts trusting every node and the broker
again, which costs at most one more failed claim or send before it learns the same.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

# A node's backoff doubles with each claim it misses in a row, up to this many seconds.
MAX_NODE_BACKOFF_S = 600.0
# While the broker is down, it is probed at most this often (each probe is one connection).
BROKER_PROBE_INTERVAL_S = 2.0


@dataclass
class NodeBackoff:
    """Nodes that let a placed job go unclaimed are placed on last until their backoff ends.

    A node whose worker took a message and never started it (a pool that routed it behind a
    running job, a worker wedged on its broker connection) would otherwise win the next
    placement again: the policy packs jobs onto the node with the fewest free devices, and a
    node holding a running job is exactly that one. Shunned nodes are not excluded: when no
    other node fits, the job still goes there."""

    first_backoff_s: float
    clock: Callable[[], float] = time.monotonic
    _misses: dict[str, int] = field(default_factory=dict)
    _until: dict[str, float] = field(default_factory=dict)

    def missed(self, nodes: Iterable[str]) -> None:
        now = self.clock()
        for node in sorted(set(nodes)):
            misses = self._misses.get(node, 0)
            # A node that went a whole backoff's length past its last one without missing
            # again has been starting what it gets: it starts over from the first backoff.
            if misses and now > self._until[node] + self._backoff(misses):
                misses = 0
            misses += 1
            self._misses[node] = misses
            self._until[node] = now + self._backoff(misses)
            log.warning(
                "node %s did not start a job it was sent (%d in a row); placing on it last "
                "for %.0f s",
                node,
                misses,
                self._backoff(misses),
            )

    def _backoff(self, misses: int) -> float:
        return min(MAX_NODE_BACKOFF_S, self.first_backoff_s * 2 ** (misses - 1))

    def shunned(self) -> frozenset[str]:
        now = self.clock()
        return frozenset(node for node, until in self._until.items() if until > now)


@dataclass
class BrokerGate:
    """Whether to place at all: after a send fails, no job is moved to `scheduled` again until
    a probe reaches the broker, so a broker outage costs each waiting job one round trip
    `queued -> scheduled -> queued`, not one per pass."""

    probe: Callable[[], bool]
    clock: Callable[[], float] = time.monotonic
    down_since: float | None = None
    _last_probe: float = float("-inf")
    _failed_sends: int = 0

    def send_failed(self, error: BaseException) -> None:
        self._failed_sends += 1
        if self.down_since is None:
            self.down_since = self.clock()
            log.warning("message broker unreachable (%s); placing nothing until it answers", error)

    def open(self) -> bool:
        """True when placements may be sent: the broker was never seen down, or a probe just
        reached it."""
        if self.down_since is None:
            return True
        now = self.clock()
        if now - self._last_probe < BROKER_PROBE_INTERVAL_S:
            return False
        self._last_probe = now
        if not self.probe():
            return False
        log.warning(
            "message broker back after %.0f s (%d send(s) failed); placing again",
            now - self.down_since,
            self._failed_sends,
        )
        self.down_since, self._failed_sends = None, 0
        return True
