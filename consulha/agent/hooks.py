"""Operator hooks (`on_promote`, `on_demote`), run in order on a thread of their own.

A hook never blocks the election: a slow hook is killed after `hooks.timeout`, its exit code and
output tail are logged, and the next event runs. Hooks get the event in environment variables:
CONSULHA_EVENT (promote|demote), CONSULHA_SITE, CONSULHA_GROUP, CONSULHA_EPOCH, CONSULHA_REASON.
"""

from __future__ import annotations

import logging
import os
import queue
import subprocess
import threading

from consulha.config import HooksConfig

log = logging.getLogger("consulha.hooks")


class HookRunner:
    def __init__(self, cfg: HooksConfig, site: str, group: str):
        self._cfg = cfg
        self._base_env = {"CONSULHA_SITE": site, "CONSULHA_GROUP": group}
        self._queue: queue.Queue[tuple[str, str, dict] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=f"{group}/hooks", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, event: str, epoch: int | None, reason: str) -> None:
        command = {"promote": self._cfg.on_promote, "demote": self._cfg.on_demote}[event]
        if command:
            env = {"CONSULHA_EVENT": event, "CONSULHA_EPOCH": "" if epoch is None else str(epoch),
                   "CONSULHA_REASON": reason}
            self._queue.put((event, command, env))

    def stop(self, timeout: float) -> None:
        """Let queued hooks finish for up to `timeout` seconds, then give up on them."""
        self._queue.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            event, command, env = item
            try:
                done = subprocess.run(
                    command, shell=True, capture_output=True, text=True,
                    timeout=self._cfg.timeout, env={**os.environ, **self._base_env, **env},
                )
                level = logging.INFO if done.returncode == 0 else logging.WARNING
                log.log(level, "hook on_%s exited %d: %s", event, done.returncode,
                        (done.stdout + done.stderr).strip()[-500:])
            except subprocess.TimeoutExpired:
                log.warning("hook on_%s killed after %.1fs", event, self._cfg.timeout)
            except OSError as error:
                log.warning("hook on_%s could not start: %s", event, error)
