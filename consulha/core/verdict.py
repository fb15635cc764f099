"""Consul's verdict on an HTTP or TCP check, as its agent reaches it, for the leader's own probes
(consulha.agent.ownchecks): they must call a service critical exactly when Consul's check of the
same definition would, never on an answer Consul calls passing or warning. docs/own-probes.md
lists the rules with their source; tests/agent/test_verdict_vs_consul.py holds them against a
real Consul, answer by answer.

Consul 1.8.7, agent/checks/check.go:
- CheckHTTP: a 2xx answer passes, 429 is a warning, any other answer critical, and so is no
  answer (refused, reset, timed out, TLS refused, too many redirects). Redirects are followed.
- CheckTCP: the connection opens: passing; else critical.
- StatusHandler (failures_before_critical, success_before_passing): a passing *or warning* result
  ends a failure streak and counts towards success_before_passing; a critical one ends a success
  streak and counts towards failures_before_critical. The reported status becomes the result
  once its streak reaches its threshold (so a warning after a failure is reported as warning,
  and a warning between two failures restarts the count). Both counters start at their
  thresholds: the first result after registration is reported at once.
"""

from __future__ import annotations

PASSING, WARNING, CRITICAL = "passing", "warning", "critical"


def http_status(code: int) -> str:
    """One HTTP answer's status, by its code (after redirects)."""
    if 200 <= code <= 299:
        return PASSING
    return WARNING if code == 429 else CRITICAL


class CheckVerdict:
    """The status Consul reports for a check after each result (its StatusHandler)."""

    def __init__(self, failures_before_critical: int = 1, success_before_passing: int = 1,
                 reported: str = CRITICAL, registered: bool = True):
        """`registered`: the check was just registered, as Consul's counters then stand (the
        first result is reported at once). False: `reported` has held for a while, its streak
        complete and the other one empty (a leadership starts from passing checks)."""
        if failures_before_critical < 1 or success_before_passing < 1:
            raise ValueError("failures_before_critical and success_before_passing start at 1")
        self._fall = failures_before_critical
        self._rise = success_before_passing
        self.reported = reported
        if registered:
            self._failures, self._successes = self._fall, self._rise
        elif reported == CRITICAL:
            self._failures, self._successes = self._fall, 0
        else:
            self._failures, self._successes = 0, self._rise

    def observe(self, status: str) -> str:
        """Take one result (passing, warning or critical); return the reported status."""
        if status in (PASSING, WARNING):
            self._successes += 1
            self._failures = 0
            if self._successes >= self._rise:
                self.reported = status
        else:
            self._failures += 1
            self._successes = 0
            if self._failures >= self._fall:
                self.reported = CRITICAL
        return self.reported
