"""The DNS publisher: while we lead, make DNS hold our value at our epoch, level-triggered.

It runs in its own thread beside the HA loop and only ever writes while the election says we
lead inside our lease. Fencing lives in the provider (the epoch prerequisite); what the publisher
adds is the loop: write when DNS differs, poll the verify servers until they converge, repair
drift every `reconcile_interval`, and demote (with a hold-off) when DNS holds a newer epoch.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

from consulha.agent.resolversweep import ResolverSweep
from consulha.config import DnsConfig
from consulha.core.backoff import Backoff
from consulha.core.election import Election
from consulha.core.reasons import Cause, Reason
from consulha.core.records import iso_now
from consulha.dns import DnsError, DnsProvider, StaleEpochError, describe_laggards
from consulha.ops.metrics import Metrics

log = logging.getLogger("consulha.dns")


class DnsPublisher:
    """Publishes every record of `cfg.records` while `election` leads.

    on_stale() is called (just before the demotion) when DNS carries a newer epoch than ours:
    the agent then holds off from the lock for a while.
    """

    def __init__(self, cfg: DnsConfig, provider: DnsProvider, election: Election,
                 clock: Callable[[], float], on_stale: Callable[[], None], metrics: Metrics,
                 poll: float = 0.05, converge_limit: float = 10.0):
        self.cfg = cfg
        self.metrics = metrics
        self.provider = provider
        self.election = election
        self._clock = clock
        self._on_stale = on_stale
        self._poll = poll
        self._converge_limit = converge_limit
        self._wakeup = threading.Event()
        self.last: dict | None = None  # epoch, time and convergence (overall and per server) of our last write
        # Why our last update failed, while it keeps failing: the site report carries it, so an
        # operator's handover can say why DNS did not move (e.g. BADSIG), not only that it did not.
        self.error: str | None = None
        self._verified_epoch: int | None = None  # every verify server answered us at this epoch
        self._server_converged: dict[str, float] = {}  # server -> seconds after the write it first answered
        self.resolvers = ResolverSweep(cfg.resolvers, lambda: provider.wanted, clock, metrics.resolver_event)
        self._sweep_owed: float | None = None  # clock of a write whose verify servers lagged past the limit

    def wake(self) -> None:
        """Run a pass now (we just won, or we are stopping)."""
        self._wakeup.set()

    def run(self, stop: threading.Event) -> None:
        """Level-triggered: every pass makes DNS hold our value at our epoch (only a read
        when it already does). Until every verify server answers it after a write, the
        next pass comes after `poll` rather than reconcile_interval, so a value
        overwritten meanwhile is put back at once, not one interval later."""
        backoff = Backoff(cap=5.0)
        written: tuple[int, float, str] | None = None  # epoch, clock and wall time of a write not yet converged
        wait = self.cfg.reconcile_interval
        while not stop.is_set():
            self._wakeup.wait(wait)
            self._wakeup.clear()
            wait = self.cfg.reconcile_interval
            if stop.is_set() or not self.election.is_leader():
                written = self._verified_epoch = self.error = self._sweep_owed = None
                self.resolvers.cancel()
                continue
            epoch = self.election.epoch
            try:
                result = self.provider.publish(epoch)
            except StaleEpochError as error:
                # Hold off first: once demoted, the HA loop must not resume at our old epoch.
                self._on_stale()
                self.metrics.dns_update("stale_epoch")
                self.election.demote(Reason(Cause.STALE_EPOCH, f"stale: DNS carries epoch "
                                            f"{error.stored}, newer than ours ({epoch})"))
                continue
            except DnsError as error:
                self.metrics.dns_update("failed")
                self.error = str(error)
                wait = backoff.next()
                log.warning("DNS update failed (%s); retrying in %.1fs", error, wait)
                continue
            backoff.reset()
            self.error = None
            if result.changed:
                log.info("DNS written with epoch %d, zones %s: %s (was epoch %s: %s)", epoch,
                         ", ".join(result.written), describe_records(self.provider.wanted), result.before.epoch,
                         describe_records(result.before.values))
                written = (epoch, self._clock(), iso_now())
                self._server_converged, self._sweep_owed = {}, None
                self.metrics.dns_update("written")
            elif written is None and self._verified_epoch != epoch:
                self._verify_unwritten(epoch)
            if written is not None:
                if self._converged(*written):
                    if self._verified_epoch == epoch:   # never flush before the servers answer it
                        self.resolvers.begin(written[1])
                    written = None
                else:
                    wait = self._poll
            wait = self._follow_resolvers(wait)

    def _follow_resolvers(self, wait: float) -> float:
        """A step of the resolver sweep when one is due; the pass's wait, shortened to its next."""
        due = self.resolvers.step()
        if self.last is not None and self.resolvers.progress:
            self.last = {**self.last, "resolvers": self.resolvers.report()}
        return wait if due is None else min(wait, max(due, self._poll))

    def _converged(self, epoch: int, written_at: float, written_wall: str) -> bool:
        """Whether to stop polling the verify servers for the write made at `written_at`:
        they all answer our values and epoch, or they did not within converge_limit (logged).
        A server that lags or is down only delays this, never the write itself."""
        views = self.provider.verifier.views()
        seconds = self._clock() - written_at
        laggards = {}
        for server, view in views.items():
            if view.converged(self.provider.wanted, epoch):
                self._server_converged.setdefault(server, round(seconds, 3))
            else:
                laggards[server] = view
        if laggards and seconds < self._converge_limit:
            return False
        if laggards:
            log.warning("DNS not converged after %.1fs: %s", seconds, describe_laggards(laggards))
            self._sweep_owed = written_at   # the resolvers wait for the laggards (_verify_unwritten)
        else:
            log.info("DNS converged on every verify server in %.3fs", seconds)
            self._verified_epoch = epoch
        self.metrics.dns_verified(not laggards, seconds)
        self.last = {"epoch": epoch, "written_at": written_wall,
                     "converged_s": None if laggards else round(seconds, 3),
                     "servers": {server: self._server_converged.get(server) for server in views}}
        return True

    def _verify_unwritten(self, epoch: int) -> None:
        """The primary already held our value, so nothing was written: ask the verify servers
        once per pass until they all answer it (a lead resumed without a write, or a server
        that caught up after converge_limit), so the converged metric tells the truth."""
        if not self.provider.verifier.laggards(epoch):
            self._verified_epoch = epoch
            self.metrics.dns_verified(True)
            if self._sweep_owed is not None:
                self.resolvers.begin(self._sweep_owed)
                self._sweep_owed = None


def describe_records(values: dict[tuple[str, str], tuple[str, ...]]) -> str:
    """ "app.example.test. A 192.0.2.1, www.example.test. CNAME app.example.test." for a log line."""
    return ", ".join(f"{name} {rtype} {','.join(value) or 'absent'}" for (name, rtype), value in values.items())
