"""The systemd notification protocol (sd_notify(3)): one datagram of `KEY=value` lines to the
unix socket named by $NOTIFY_SOCKET. A few lines, so no extra dependency.

Outside systemd (no $NOTIFY_SOCKET: tests, a shell, another supervisor) every call is a no-op.
Sending never raises: systemd gone or the socket full must not stop the agent's loop; a missed
watchdog ping is what systemd then acts on.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Callable, Mapping

log = logging.getLogger("consulha.sdnotify")


class Notifier:
    """Sends notifications to the socket of the service manager that started us, if any."""

    def __init__(self, environ: Mapping[str, str] | None = None):
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        # A leading '@' names a socket in the abstract namespace (a NUL byte on the wire).
        self._address = "\0" + address[1:] if address.startswith("@") else address
        self.watchdog_interval = _watchdog_interval(env)

    @property
    def enabled(self) -> bool:
        return bool(self._address)

    def send(self, **fields: str) -> bool:
        """Send one notification, e.g. send(READY="1", STATUS="leader"). True if it was sent."""
        if not self.enabled:
            return False
        message = "\n".join(f"{key}={value}" for key, value in fields.items()).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message, self._address)
            return True
        except OSError as error:
            log.debug("sd_notify to %r failed: %s", self._address, error)
            return False


def _watchdog_interval(env: Mapping[str, str]) -> float | None:
    """Seconds between which systemd expects WATCHDOG=1, or None when no watchdog is set for
    this process (WATCHDOG_PID, when present, must be our PID: the variable may be inherited)."""
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None
    return int(usec) / 1_000_000


class LoopNotifier:
    """What a main loop tells systemd (Type=notify, WatchdogSec=): WATCHDOG=1 on every pass,
    READY=1 after the first completed cycle, STATUS= whenever the status text changes."""

    def __init__(self, notifier: Notifier | None = None):
        self.notifier = notifier or Notifier()
        self._ready = False
        self._status: str | None = None

    def alive(self) -> None:
        """The loop came round again: feed the watchdog (only if systemd set one)."""
        if self.notifier.watchdog_interval is not None:
            self.notifier.send(WATCHDOG="1")

    def cycle_completed(self, status: str) -> None:
        if not self._ready:
            # Retried on the next cycle if it could not be sent (a no-op outside systemd).
            self._ready = self.notifier.send(READY="1", STATUS=status)
            self._status = status
        elif status != self._status:
            self.notifier.send(STATUS=status)
            self._status = status

    def stopping(self) -> None:
        self.notifier.send(STOPPING="1", STATUS="stopping: releasing the lock")


class HostNotifier:
    """What one process serving many groups (consulha.agent.host) tells systemd: the unit is the
    host, so its notifications speak for every group, not for whichever group spoke last.

    - WATCHDOG=1 only once every group's loop has come round since the previous one: one
      wedged group stops the pings, as a wedged loop does in a unit of its own.
    - READY=1 once every group has completed its first cycle, or, after `ready_grace`
      seconds, once at least one has (a group that cannot reach Consul, e.g. a wrong token,
      must not keep the others from starting; its file's `validate --connect` names it).
    - STATUS= one `group: role, epoch N` per group, in the order the groups were given.
    """

    def __init__(self, groups: list[str] | tuple[str, ...], notifier: Notifier | None = None,
                 ready_grace: float = 30.0, clock: Callable[[], float] = time.monotonic):
        self.notifier = notifier or Notifier()
        self.groups = tuple(groups)
        self._grace_ends = clock() + ready_grace
        self._clock = clock
        self._lock = threading.Lock()
        self._ticked: set[str] = set()
        self._status: dict[str, str] = {}
        self._sent_status: str | None = None
        self._ready = False
        self._stopping = False

    def for_group(self, group: str) -> "GroupNotifier":
        return GroupNotifier(self, group)

    def status_text(self) -> str:
        return "; ".join(f"{group}: {self._status.get(group, 'starting')}" for group in self.groups)

    def alive(self, group: str) -> None:
        with self._lock:
            self._ticked.add(group)
            if self.notifier.watchdog_interval is not None and self._ticked >= set(self.groups):
                self._ticked.clear()
                self.notifier.send(WATCHDOG="1")
            self._maybe_ready()

    def cycle_completed(self, group: str, status: str) -> None:
        with self._lock:
            self._status[group] = status
            if not self._maybe_ready() and self._ready:
                text = self.status_text()
                if text != self._sent_status:
                    self.notifier.send(STATUS=text)
                    self._sent_status = text

    def _maybe_ready(self) -> bool:
        """Send READY=1 when due; True if it was sent now (caller holds the lock)."""
        if self._ready or not self._status:
            return False
        if len(self._status) < len(self.groups) and self._clock() < self._grace_ends:
            return False
        text = self.status_text()
        # Retried on the next call if it could not be sent (a no-op outside systemd).
        self._ready = self.notifier.send(READY="1", STATUS=text)
        self._sent_status = text
        return self._ready

    def stopping(self) -> None:
        with self._lock:
            if not self._stopping:
                self._stopping = True
                self.notifier.send(STOPPING="1", STATUS="stopping: releasing the locks")


class GroupNotifier:
    """One group's view of a HostNotifier, with the interface of a LoopNotifier."""

    def __init__(self, host: HostNotifier, group: str):
        self.host = host
        self.group = group

    def alive(self) -> None:
        self.host.alive(self.group)

    def cycle_completed(self, status: str) -> None:
        self.host.cycle_completed(self.group, status)

    def stopping(self) -> None:
        self.host.stopping()
