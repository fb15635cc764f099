"""The results of script checks, which the agent runs and reports to Consul itself.

Script checks run here, never as Consul script checks (those need `enable_script_checks`, a
remote-code-execution risk). Each result is pushed to the service's TTL check: exit 0 is
passing, 1 warning, anything else or a timeout critical; the output is kept as the check's notes.
If Consul cannot be reached the result is dropped and the next run pushes again: the TTL then
turns the check critical on Consul's side, which is the safe direction.
"""

from __future__ import annotations

import logging
import shlex
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable

from consulha.config import CheckConfig
from consulha.consul.store import ConsulRefused, ConsulStore, ConsulUnavailable

log = logging.getLogger("consulha.health")


def script_ttl(check: CheckConfig) -> float:
    """TTL of a script check's Consul twin: two missed runs turn it critical."""
    return 2 * check.interval + check.timeout


def run_script(command: str, timeout: float, base_dir: Path) -> tuple[str, str]:
    """Run one check command; returns (status, output). Never raises."""
    argv = shlex.split(command)
    if argv and "/" in argv[0] and not Path(argv[0]).is_absolute():
        beside_config = base_dir / argv[0]
        if beside_config.exists():
            argv[0] = str(beside_config)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return "critical", f"timed out after {timeout:g}s"
    except OSError as error:
        return "critical", f"could not run {argv[0]!r}: {error.strerror}"
    status = {0: "passing", 1: "warning"}.get(done.returncode, "critical")
    output = (done.stdout + done.stderr).strip()
    return status, f"exit {done.returncode}: {output}" if output else f"exit {done.returncode}"


class Debounce:
    """Consul's failures_before_critical / success_before_passing for the checks we run
    ourselves: the reported status changes only after that many results in a row. A warning
    counts as a failure towards critical but is reported as it is once passing was left."""

    def __init__(self, failures_before_critical: int = 1, success_before_passing: int = 1,
                 reported: str = "critical"):
        self._needed = {"critical": failures_before_critical, "passing": success_before_passing}
        # Like a Consul check: critical until it has passed often enough, unless told otherwise.
        self.reported = reported
        self._streak: tuple[str, int] = ("passing" if reported == "passing" else "critical", 0)

    def observe(self, status: str, extra_failures: int = 0) -> str:
        """`extra_failures`: this many more failures in a row than configured before critical."""
        kind = "passing" if status == "passing" else "critical"
        count = self._streak[1] + 1 if self._streak[0] == kind else 1
        self._streak = (kind, count)
        if count >= self._needed[kind] + (extra_failures if kind == "critical" else 0):
            self.reported = status
        return self.reported


class ScriptChecks:
    """One thread per script check, each pushing its debounced results to the check's TTL.

    While we lead with our own probes (consulha.agent.ownchecks), the result pushed to Consul
    needs one failure more than configured, and the agent acts on its own verdict first: it
    releases the lock on purpose before Consul's copy invalidates the session."""

    def __init__(self, store: ConsulStore, scripts: dict[str, CheckConfig], base_dir: Path,
                 stop: threading.Event, wake: Callable[[], None] = lambda: None):
        self._store = store
        self._base_dir = base_dir
        self._stop = stop
        self._wake = wake
        self.lagging = threading.Event()  # set while we lead with our own probes
        self._critical: set[str] = set()  # check IDs whose own verdict is critical
        self._threads = [threading.Thread(target=self._script_loop, args=(check_id, check),
                                          name=f"check {check_id}", daemon=True)
                         for check_id, check in scripts.items()]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def critical(self) -> frozenset[str]:
        """Check IDs whose latest debounced result, as configured, is critical."""
        return frozenset(self._critical)

    def _push(self, check_id: str, status: str, output: str) -> None:
        try:
            self._store.update_ttl(check_id, status, output)
        except (ConsulUnavailable, ConsulRefused) as error:
            # Refused: the check is not registered (yet, or Consul lost it); the agent re-registers.
            log.debug("could not push %s for %s: %s", status, check_id, error)

    def _script_loop(self, check_id: str, check: CheckConfig) -> None:
        own = Debounce(check.failures_before_critical, check.success_before_passing)
        pushed = Debounce(check.failures_before_critical, check.success_before_passing)
        while not self._stop.is_set():
            started = time.monotonic()
            status, output = run_script(check.target, check.timeout, self._base_dir)
            if status != "passing":
                log.info("script check %s is %s: %s", check_id, status, output[-200:])
            if own.observe(status) == "critical":
                if check_id not in self._critical:
                    self._critical.add(check_id)
                    self._wake()
            else:
                self._critical.discard(check_id)
            self._push(check_id, pushed.observe(status, 1 if self.lagging.is_set() else 0), output)
            self._stop.wait(max(0.0, check.interval - (time.monotonic() - started)))
