"""What the scheduler holds back from: nodes that missed claims (doubling backoff, forgotten
after a quiet spell), a broker it could not reach (probed, not sent to), and how a run of
failed passes is logged (once per change, not once per pass)."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy.exc import OperationalError

from scheduler.backoff import BROKER_PROBE_INTERVAL_S, BrokerGate, NodeBackoff
from scheduler.pass_failures import PassFailures


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_node_that_keeps_missing_claims_backs_off_longer_each_time_then_is_forgiven() -> None:
    clock = Clock()
    backoff = NodeBackoff(first_backoff_s=5, clock=clock)
    backoff.missed(["n1"])
    assert backoff.shunned() == {"n1"}
    clock.now += 5.1
    assert backoff.shunned() == frozenset()
    backoff.missed(["n1"])  # again within a backoff's length: doubled
    clock.now += 9.9
    assert backoff.shunned() == {"n1"}
    clock.now += 0.2
    assert backoff.shunned() == frozenset()
    clock.now += 60  # a quiet spell: the next miss starts over at the first backoff
    backoff.missed(["n1", "n2"])
    clock.now += 5.1
    assert backoff.shunned() == frozenset()


def test_the_broker_gate_probes_at_most_every_interval_and_opens_when_a_probe_answers() -> None:
    clock, probes, answers = Clock(), [], [False, False, True]

    def probe() -> bool:
        probes.append(clock.now)
        return answers[len(probes) - 1]

    gate = BrokerGate(probe=probe, clock=clock)
    assert gate.open() and probes == [], "never down: no probe"
    gate.send_failed(ConnectionError("refused"))
    assert not gate.open()
    assert not gate.open(), "within the interval: no second probe"
    assert len(probes) == 1
    clock.now += BROKER_PROBE_INTERVAL_S
    assert not gate.open()
    clock.now += BROKER_PROBE_INTERVAL_S
    assert gate.open() and len(probes) == 3
    assert gate.open() and len(probes) == 3, "open again: no more probes"


def test_a_database_outage_is_two_log_lines_however_many_passes_fail(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    failures = PassFailures(clock=clock)
    outage = OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))
    with caplog.at_level(logging.INFO, logger="scheduler.pass_failures"):
        for _ in range(150):
            failures.failure(outage)
            clock.now += 0.4
        failures.success()
        failures.success()
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 2, lines
    assert "database unreachable" in lines[0] and not caplog.records[0].exc_info
    assert "after 150 failed in 60 s" in lines[1]


def test_a_failing_pass_that_is_not_an_outage_keeps_its_traceback_once_per_cause(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failures = PassFailures(clock=Clock())
    with caplog.at_level(logging.INFO, logger="scheduler.pass_failures"):
        for _ in range(3):
            failures.failure(KeyError("n9"))
        failures.failure(ValueError("bad row"))
    assert [bool(r.exc_info) for r in caplog.records] == [True, True]
    assert "KeyError" in caplog.records[0].getMessage()
