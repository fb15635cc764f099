"""The leader's own probes: while this site leads, it probes its HTTP and TCP services itself,
on each check's interval and debounce, and steps down the moment one turns critical.

Why: Consul's copy of a check reaches the servers within milliseconds of the local agent
knowing it, and the servers then invalidate the leader's session, which puts the lock-delay on
the key: the standby waits it out in full. A leader that finds the failure first and releases
the lock on purpose leaves no lock-delay behind. So while a site leads, its Consul checks are
registered one failure later (consulha.consul.registration) and stay the session's safety net:
if these probes stall, Consul still ends the session one interval later than before.

A standby probes nothing, except once just before it takes a free lock (`pass_now`): the lock
is free at once after a release, sooner than Consul would see a failure of the standby's own
services; and a site that stepped down for a failing service keeps probing that one until it
passes again, standing out of the election meanwhile.
"""

from __future__ import annotations

import http.client
import logging
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from consulha.config import CheckConfig
from consulha.core.verdict import CRITICAL, PASSING, CheckVerdict, http_status

log = logging.getLogger("consulha.agent")

PROBED_KINDS = ("http", "tcp")  # script checks run in consulha.consul.health, whatever the role


def probe(check: CheckConfig) -> tuple[str, str]:
    """One probe as Consul's agent would run it: (status, output), judged by
    consulha.core.verdict (no answer within the timeout is critical; redirects are followed, as
    Consul's do). Never raises."""
    try:
        if check.kind == "tcp":
            host, _, port = check.target.rpartition(":")
            socket.create_connection((host.strip("[]"), int(port)), timeout=check.timeout).close()
            return PASSING, f"TCP connect {check.target}: success"
        request = urllib.request.Request(check.target, headers={"User-Agent": "consulha probe"})
        with urllib.request.urlopen(request, timeout=check.timeout) as answer:
            code = answer.status
    except urllib.error.HTTPError as error:
        code = error.code
    except (OSError, http.client.HTTPException, ValueError) as error:
        return CRITICAL, f"{check.kind.upper()} {check.target}: {error}"
    return http_status(code), f"HTTP GET {check.target}: {code}"


class OwnProbes:
    """One thread per group probes every HTTP/TCP service of ours while we lead."""

    def __init__(self, checks: dict[str, CheckConfig], wake: Callable[[], None],
                 stop: threading.Event, scripts_failing: Callable[[], tuple[str, ...]] = tuple,
                 run_probe: Callable[[CheckConfig], tuple[str, str]] = probe):
        """`checks`: service name -> its check (other kinds are ignored); `wake`: called when a
        service turns critical, to start the main loop's next pass at once; `scripts_failing`:
        the script-checked services whose own verdict is critical (consulha.consul.health)."""
        self._checks = {name: check for name, check in checks.items() if check.kind in PROBED_KINDS}
        self._scripts_failing = scripts_failing
        self._wake = wake
        self._stop = stop
        self._probe = run_probe
        self._probing = threading.Event()  # set while we lead, or a service of ours is failing
        self._lock = threading.Lock()
        self._leading = False
        self._failing: tuple[str, ...] = ()
        self._generation = 0  # a probe begun before the last change of role reports nothing

    @property
    def active(self) -> bool:
        return bool(self._checks)

    def start(self, name: str) -> None:
        if self.active:
            threading.Thread(target=self._run, name=name, daemon=True).start()

    def lead(self) -> None:
        """We just won the lock, with every Consul check passing: probe every service."""
        with self._lock:
            self._generation += 1
            self._leading, self._failing = True, ()
        self._probing.set()

    def stand_by(self) -> None:
        """A service that made us step down stays failing until its probes pass again (after
        its debounce): meanwhile we stay out of the election, though Consul's copy of the
        check, a failure behind, may not have seen it yet. The others are no longer probed."""
        with self._lock:
            self._generation += 1
            self._leading = False
            if not self._failing:
                self._probing.clear()

    def failing(self) -> tuple[str, ...]:
        """Our services whose probes are critical in this leadership, after their debounce, and
        those whose script's own verdict is critical."""
        return self._failing + tuple(n for n in self._scripts_failing() if n not in self._failing)

    def pass_now(self) -> bool:
        """Probe every service once, now: True when none is critical (no debounce: a standby
        takes no free lock on a failing probe, and asks again on its next pass)."""
        failing = [(name, output) for name, check in self._checks.items()
                   for status, output in [self._probe(check)] if status == CRITICAL]
        failing += [(name, "script check critical") for name in self._scripts_failing()]
        for name, output in failing:
            log.warning("lock free, not taking it: own probe of %s critical: %s", name, output[-200:])
        return not failing

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._probing.wait(0.5):
                continue
            with self._lock:
                generation, leading, failing = self._generation, self._leading, self._failing
            self._probe_until_changed(generation, leading, failing)

    def _probe_until_changed(self, generation: int, leading: bool, failing: tuple[str, ...]) -> None:
        """Leading: every service, each starting passing (the session needed it); standing by:
        the failing ones, each starting critical, until none is left. Each result counts as
        Consul counts it (consulha.core.verdict)."""
        names = list(self._checks) if leading else list(failing)
        verdicts = {name: CheckVerdict(self._checks[name].failures_before_critical,
                                       self._checks[name].success_before_passing,
                                       reported=PASSING if leading else CRITICAL, registered=False)
                    for name in names}
        due = {name: time.monotonic() for name in names}
        while due and not self._stop.is_set():
            name = min(due, key=due.get)
            if self._stop.wait(max(0.0, due[name] - time.monotonic())):
                return
            check = self._checks[name]
            due[name] = time.monotonic() + check.interval
            status, output = self._probe(check)
            verdict = verdicts[name].observe(status)
            with self._lock:
                if generation != self._generation:
                    return  # our role changed meanwhile: start over
                was = name in self._failing
                now = (set(self._failing) | {name}) if verdict == CRITICAL else (set(self._failing) - {name})
                self._failing = tuple(n for n in self._checks if n in now)
                if not leading and was and verdict != CRITICAL:
                    del due[name]
                    log.info("own probe of %s passes again", name)
                if not self._leading and not self._failing:
                    self._probing.clear()
            if verdict == CRITICAL and not was:
                log.warning("own probe of %s critical: %s", name, output[-200:])
                self._wake()
