"""The lock actions: the Consul writes behind a Decision, each sequence that must not be split
(acquire -> read the index -> write the epoch -> promote) in one method.

    <prefix>/leader             the lock; its value is a LeaderRecord with the epoch
    <prefix>/candidates/<site>  held by our session while we compete (who may take over)
"""

from __future__ import annotations

import logging
from typing import Callable

from consulha.agent.failures import FailureRecorder
from consulha.agent.observe import SessionMemory
from consulha.agent.status import service_instances
from consulha.config import Config
from consulha.consul.control import append_history, clear_request, put_request
from consulha.consul.store import ConsulStore
from consulha.core.control import ControlKeys, HandoverRequest, HistoryEntry
from consulha.core.damping import LOSER_FAULTS, Failure
from consulha.core.decide import Snapshot, cause_of_win
from consulha.core.election import Election
from consulha.core.keys import Keys
from consulha.core.reasons import Cause, Reason
from consulha.core.records import CandidateRecord, LeaderRecord
from consulha.core.timing import Timing

log = logging.getLogger("consulha.agent")

FAILBACK_REQUEST_TTL = 30.0  # a failback request nobody honours lapses after this
REANCHOR_RESERVATION = 10.0  # how long others stand back while a leader moves to a new session


class LockActions:
    def __init__(self, cfg: Config, keys: Keys, store: ConsulStore, control_keys: ControlKeys,
                 election: Election, memory: SessionMemory, timing: Timing,
                 clock: Callable[[], float], failures: FailureRecorder):
        self.cfg = cfg
        self.timing = timing
        self.keys = keys
        self.store = store
        self.control_keys = control_keys
        self.election = election
        self.memory = memory
        self._clock = clock
        self.failures = failures

    def _record(self, epoch: int | None) -> LeaderRecord:
        return LeaderRecord(site=self.cfg.site, address=self.cfg.dns.value, epoch=epoch,
                            session=self.memory.session)

    # -- winning --------------------------------------------------------------------------------

    def acquire(self, s: Snapshot, damped: Reason | None = None) -> bool:
        """Take the free lock and lead at its epoch; True once promoted. `damped`: we lead
        although our failures damp us (no other healthy candidate), said in the history."""
        session = self.memory.session
        if not self.store.acquire(self.keys.leader, self._record(None).encode(), session):
            return False
        _, entry = self.store.get(self.keys.leader)
        if entry is None or entry.session != session:
            return False
        epoch = entry.modify_index
        previous = s.leader.record
        reason, request = cause_of_win(self.cfg.site, previous, s.control.handover, s.wall,
                                       self._failing_checks(previous, s), self._heartbeat_of(previous))
        if damped is not None:
            reason = Reason(reason.cause, f"{reason}; {damped}")
        # The lease counts from the send time of the epoch write, the last request before the
        # promotion: a compare-and-set at the acquire's index succeeds only while our session
        # still holds the key, so it proves the lock as well as a read. (Counted from the read
        # before it, with the catalog read that explains the win in between, 13 of 40 new
        # leaders of a site loss ran out of lease before their first confirmation.)
        sent_at = self._clock()
        if not self.store.put(self.keys.leader, self._record(epoch).encode(), cas=epoch):
            return False
        self.memory.free_seen = None
        if not self.election.promote(epoch, sent_at, reason):
            return False  # the proof came too late for the lease: the next pass resumes
        if request is not None:
            clear_request(self.store, self.control_keys, request)
        append_history(self.store, self.control_keys, HistoryEntry(
            epoch=epoch, from_site=previous.site if previous else None, to=self.cfg.site, cause=reason))
        self._report_loser(previous, reason, s)
        return True

    def _report_loser(self, previous: LeaderRecord | None, reason: Reason, s: Snapshot) -> None:
        """The old leader's own checks lost it the lock: count its failure, in case it could
        not (dead, frozen or cut off); the record counts each lost epoch once."""
        if (not self.cfg.election.damping.enabled or previous is None or previous.site == self.cfg.site
                or reason.cause not in LOSER_FAULTS):
            return
        known = s.control.failures.get(previous.site)
        if known is None or not known.has(previous.epoch):
            self.failures.record(previous.site, Failure(previous.epoch, s.wall, reason))

    def _failing_checks(self, previous: LeaderRecord | None, s: Snapshot) -> list[tuple[str | None, str]]:
        """Critical checks of the old leader's site, read only when they can explain the win."""
        request = s.control.handover
        if previous is None or previous.released is not None or (
                request is not None and request.live(s.wall) and request.to in (None, self.cfg.site)):
            return []
        return [(c["service"], c["id"]) for instance in service_instances(self.cfg, self.keys, self.store)
                if instance["site"] == previous.site for c in instance["checks"]
                if c["status"] == "critical"]

    def _heartbeat_of(self, previous: LeaderRecord | None) -> str:
        return self.keys.heartbeat_check_id_of(previous.site) if previous else ""

    def resume(self, epoch: int, reason: Reason) -> bool:
        """We fenced ourselves (Consul slower than the lease) and the lock never left us: nobody
        else can have led meanwhile, so lead again at the same epoch (no DNS write). The proof
        is a fresh read: the one the decision saw may be a stale blocking answer."""
        sent_at = self._clock()
        _, entry = self.store.get(self.keys.leader)
        if entry is None or entry.session != self.memory.session:
            return False
        record = LeaderRecord.decode(entry)
        if record is None or record.epoch != epoch:
            return False
        # False: the proof came back after the lease it would grant; the next pass tries again.
        return self.election.promote(epoch, sent_at, reason)

    # -- giving up ------------------------------------------------------------------------------

    def hand_over(self, reason: Reason) -> None:
        """Planned step-down: stop writing DNS first, then release (no lock-delay follows)."""
        epoch = self.election.epoch
        self.election.demote(reason)
        self.release(reason, epoch)

    def release(self, reason: Reason, epoch: int | None) -> None:
        """Release the lock, leaving our value with the reason (the next leader's history cause)."""
        self.store.release(self.keys.leader, self.memory.session,
                           self._record(epoch).with_release(reason).encode())

    def release_ours(self) -> None:
        """We hold the lock without leading and must not resume: give it back as it is."""
        _, entry = self.store.get(self.keys.leader)
        if entry is not None and entry.session == self.memory.session:
            self.store.release(self.keys.leader, self.memory.session, entry.value)
            log.warning("released a lock we held after standing down")

    def holds_leader_key(self) -> bool:
        _, entry = self.store.get(self.keys.leader)
        return entry is not None and entry.session == self.memory.session

    # -- sessions -------------------------------------------------------------------------------

    def create_session(self, paused: bool) -> str:
        """A session tied to every check, or while paused to the node checks and the heartbeat
        only. Raises CheckNotPassing while one of those checks is not passing."""
        checks = self.keys.paused_session_checks if paused else self.keys.session_checks
        return self.store.create_session(self.keys.session_name, checks, self.cfg.session.ttl,
                                         self.cfg.session.lock_delay)

    def reanchor(self, paused: bool, wall: float) -> None:
        """Move the lock we lead with to a new session of the other kind, at the same epoch.

        The lock is free for a moment between the release and the new acquire (one session
        cannot hand a key to another), so a request reserving it for us is written first: every
        other candidate stands back while a live request names someone else. An explicit release
        puts no lock-delay on the key. Raises CheckNotPassing (nothing changed) when the new
        session cannot be made."""
        new_session = self.create_session(paused)
        old_session, epoch = self.memory.session, self.election.epoch
        reservation = HandoverRequest(to=self.cfg.site, by=f"consulha site {self.cfg.site}",
                                      kind="reanchor", state="accepted", requested_at=wall,
                                      expires_at=wall + REANCHOR_RESERVATION)
        if not put_request(self.store, self.control_keys, reservation):
            self.store.destroy_session(new_session)  # a request is in the way: next pass
            return
        self.store.release(self.keys.leader, old_session, self._record(epoch).encode())
        record = LeaderRecord(site=self.cfg.site, address=self.cfg.dns.value, epoch=epoch,
                              session=new_session)
        moved = self.store.acquire(self.keys.leader, record.encode(), new_session)
        self.end_session()
        self.memory.new_session(new_session, paused, self._clock(), self.timing.renew)
        _, current = self.store.get(self.control_keys.handover)
        ours = HandoverRequest.decode(current) if current is not None else None
        if ours is not None and ours.kind == "reanchor" and ours.to == self.cfg.site:
            clear_request(self.store, self.control_keys, ours)
        if not moved:
            self.election.demote(Reason(Cause.LOCK_HELD_BY_OTHER, "lost the lock while moving it "
                                        "to a new session"))

    # -- candidacy and requests -----------------------------------------------------------------

    def keep_candidate_key(self) -> None:
        """Hold <prefix>/candidates/<site> with our session, retried on every pass until it is
        ours: it can be refused for a while (a previous session of ours still holds it, or its
        lock-delay runs), and a site that wins the lock meanwhile must not stay missing from
        the candidates."""
        if self.memory.candidate_key_held:
            return
        value = CandidateRecord(site=self.cfg.site, session=self.memory.session,
                                address=self.cfg.dns.value)
        self.memory.candidate_key_held = self.store.acquire(
            self.keys.candidate(self.cfg.site), value.encode(), self.memory.session)

    def end_session(self) -> None:
        """Release the candidate key, then destroy the session. Destroying it puts lock-delay
        on every key it holds and an explicit release does not, so our next session (after a
        restart or maintenance) can take the candidate key at once."""
        if self.memory.candidate_key_held:
            self.store.release(self.keys.candidate(self.cfg.site), self.memory.session, None)
        self.store.destroy_session(self.memory.session)
        self.memory.forget_session()

    def ask_for_failback(self, holder: str | None, wall: float) -> None:
        """The preferred site, healthy for the whole failback delay, asks for its lead back."""
        request = HandoverRequest(to=self.cfg.site, by=f"failback policy of site {self.cfg.site}",
                                  kind="failback", from_site=holder, requested_at=wall,
                                  expires_at=wall + FAILBACK_REQUEST_TTL)
        if put_request(self.store, self.control_keys, request):
            log.info("healthy for %.0fs as preferred site: asked %s for a failback",
                     self.cfg.election.failback_delay, holder)

    def clear_request(self, request: HandoverRequest) -> None:
        clear_request(self.store, self.control_keys, request)

