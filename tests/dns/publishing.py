"""Run a real DnsPublisher in a thread for a test, under an election that leads at a fixed epoch."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Iterator

from consulha.agent.publisher import DnsPublisher
from consulha.config import Config, ConsulConfig, SessionConfig
from consulha.ops.metrics import Metrics


class LeadingElection:
    """The publisher's view of an election we lead at a fixed epoch (until demoted)."""

    def __init__(self, epoch: int):
        self.epoch = epoch
        self.demoted = None  # the Reason given to demote()

    def is_leader(self) -> bool:
        return self.demoted is None

    def demote(self, reason) -> None:
        self.demoted = reason


@contextlib.contextmanager
def running_publisher(provider, epoch: int, converge_limit: float = 10.0) -> Iterator[DnsPublisher]:
    """A publisher for `provider` running (and woken) inside the block, stopped and joined after."""
    site = Config(path="test.yaml", site=provider.site, group="app", key_prefix="consulha/app",
                  consul=ConsulConfig(), session=SessionConfig(), services=(), dns=provider.cfg)
    publisher = DnsPublisher(provider.cfg, provider, LeadingElection(epoch), time.monotonic, lambda: None,
                             Metrics(site), poll=0.02, converge_limit=converge_limit)
    stop = threading.Event()
    thread = threading.Thread(target=publisher.run, args=(stop,), daemon=True)
    thread.start()
    publisher.wake()
    try:
        yield publisher
    finally:
        stop.set()
        publisher.wake()
        thread.join(5)
        assert not thread.is_alive(), "the publisher did not stop"
