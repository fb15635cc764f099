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
from typing import Mapping

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
