"""Why something happened: a kind (compared by code, tests and the fault checker) plus free
detail (read by people). `str(reason)` is the one line logs, status and history show."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Cause(str, Enum):
    # lifecycle
    STARTING = "starting"
    GRACEFUL_STOP = "graceful_stop"
    # eligibility
    SESSION_CREATED = "session_created"
    COMPETING = "competing"
    NOT_A_CANDIDATE = "not_a_candidate"          # Consul refused a session: a check is not passing
    SESSION_INVALIDATED = "session_invalidated"  # a renewal found our session gone
    CONSUL_UNAVAILABLE = "consul_unavailable"
    CONSUL_REFUSED = "consul_refused"
    MAINTENANCE = "maintenance"
    PAUSED = "paused"                            # automatic failover paused for the group
    # losing the lock
    LEADER_KEY_DELETED = "leader_key_deleted"
    LOCK_RELEASED = "lock_released"
    LOCK_HELD_BY_OTHER = "lock_held_by_other"
    SELF_FENCED = "self_fenced"
    STALE_EPOCH = "stale_epoch"
    # winning the lock (the history's cause)
    INITIAL_ELECTION = "initial_election"
    HANDOVER = "handover"
    TAKEOVER = "takeover"
    FAILBACK = "failback"
    CHECK_FAILED = "check_failed"
    HEARTBEAT_LOST = "heartbeat_lost"
    NODE_UNREACHABLE = "node_unreachable"
    LEADER_SESSION_ENDED = "leader_session_ended"
    LEASE_RESTORED = "lease_restored"
    # flap damping: a site that keeps losing leadership is passed over (consulha.core.damping)
    DAMPED = "damped"
    # refusals of a request to move leadership
    NO_TARGET = "no_target"
    TARGET_IS_LEADER = "target_is_leader"
    TARGET_NOT_CANDIDATE = "target_not_candidate"
    TARGET_IN_MAINTENANCE = "target_in_maintenance"
    TARGET_UNHEALTHY = "target_unhealthy"


@dataclass(frozen=True)
class Reason:
    cause: Cause
    detail: str = ""
    # Seconds that matter to a machine reader (a self-fence: how long ago the lease ran out).
    seconds: float | None = None

    def __str__(self) -> str:
        return self.detail or self.cause.value.replace("_", " ")

    def to_json(self) -> dict:
        data: dict = {"cause": self.cause.value, "detail": str(self)}
        if self.seconds is not None:
            data["seconds"] = self.seconds
        return data

    @classmethod
    def from_json(cls, data: object) -> "Reason | None":
        """The reason written by `to_json`, or None for anything else (an older or foreign value)."""
        if not isinstance(data, dict):
            return None
        try:
            return cls(Cause(data.get("cause")), str(data.get("detail") or ""), data.get("seconds"))
        except ValueError:
            return None
