"""Writing the flap-damping failure records (their values and arithmetic: consulha.core.damping).

Two sites may report one lost leadership: the site that lost it, before it competes again
(decide's RECORD_FAILURE), and the site that won from it, when the catalog shows the loser's own
checks failing (a loser that is dead or cut off from Consul cannot write). Both write with
check-and-set, and a record counts each lost epoch once, so it does not matter who is first.
"""

from __future__ import annotations

import logging

from consulha.config import Config
from consulha.consul.control import append_history, put_failures, read_failures
from consulha.consul.store import ConsulStore
from consulha.core.control import ControlKeys, OperatorEvent
from consulha.core.damping import Damping, Failure, FailureRecord
from consulha.core.decide import fault_of
from consulha.core.keys import Keys
from consulha.core.reasons import Cause, Reason
from consulha.agent.status import service_instances

log = logging.getLogger("consulha.damping")

WRITE_ATTEMPTS = 5  # check-and-set races with the other site's report of the same loss


class FailureRecorder:
    def __init__(self, cfg: Config, keys: Keys, store: ConsulStore, control_keys: ControlKeys):
        self.cfg = cfg
        self.keys = keys
        self.store = store
        self.control_keys = control_keys
        self.damping = Damping(cfg.election.damping)
        self._passed_over_at: int | None = None  # the free key's state we last said so for

    def record_own(self, failure: Failure) -> FailureRecord | None:
        """Our own lost leadership, its reason made precise by our checks in the catalog (the
        loss itself only says the lock went away)."""
        reason = failure.reason
        if reason.cause != Cause.CHECK_FAILED:
            failing = [(check["service"], check["id"])
                       for instance in service_instances(self.cfg, self.keys, self.store)
                       if instance["site"] == self.cfg.site for check in instance["checks"]
                       if check["status"] == "critical"]
            fault = fault_of(failing, self.keys.heartbeat_check_id)
            if fault is not None:
                reason = Reason(fault.cause, f"{fault}: {reason}")
        return self.record(self.cfg.site, Failure(failure.epoch, failure.at, reason))

    def passed_over(self, reason: Reason, key_index: int) -> None:
        """Say once per free lock (not on every retry) that we leave it to another site."""
        if key_index != self._passed_over_at:
            self._passed_over_at = key_index
            log.info("%s", reason)

    def record(self, site: str, failure: Failure) -> FailureRecord | None:
        """Count `failure` in `site`'s record; the new record, or None when it was counted
        already (or every attempt lost a race: then it is only in the log)."""
        for _ in range(WRITE_ATTEMPTS):
            updated = self.damping.add(site, read_failures(self.store, self.control_keys, site), failure)
            if updated is None:
                return None
            if put_failures(self.store, self.control_keys, updated):
                summary = (f"site {site} lost leadership at epoch {failure.epoch}: {failure.reason}; "
                           f"{updated.describe(failure.at)}")
                log.warning("%s", summary)
                append_history(self.store, self.control_keys, OperatorEvent("failure", summary, failure.epoch))
                return updated
        log.warning("could not record site %s's failure at epoch %s (%s): the record kept changing",
                    site, failure.epoch, failure.reason)
        return None
