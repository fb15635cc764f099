"""The decision of the ZooKeeper design's site agent (bench/peers/zkagent.py), pure: what one
site sees of ZooKeeper and of its own services in, what to do out.

The design, as it ran before consulha: each site holds one ephemeral znode per service while the
service is healthy; the persistent znode `active` names the site in charge; the standby watches
the active site's service znodes and, when one is gone, points DNS at itself and names itself in
`active` (a plain write: no fencing, no prerequisite). The old active site learns from its watch
on `active` that it is the standby now.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Role(str, Enum):
    ACTIVE = "active"
    STANDBY = "standby"


@dataclass(frozen=True)
class View:
    """What the agent knows now. `active`: the site the `active` znode names, None while there
    is no such znode; `peer_up`: the peer's service znodes as the last children watch saw them
    (None before the watch first answered); `held`: the service znodes this site's current
    session created; `role`: the role the agent announced last (None: none yet)."""

    site: str
    services: frozenset[str]
    healthy: frozenset[str]
    connected: bool
    active: str | None
    peer_up: frozenset[str] | None
    held: frozenset[str]
    role: Role | None


@dataclass(frozen=True)
class Plan:
    """`claim`: create `active` naming this site (nobody holds it yet; losing that race is
    fine); `take_over`: point DNS at this site, then name it in `active`; `announce`: a role to
    write to the event file (it changed)."""

    reason: str
    create: frozenset[str] = frozenset()
    delete: frozenset[str] = frozenset()
    claim: bool = False
    take_over: bool = False
    announce: Role | None = None


def _announce(view: View, role: Role) -> Role | None:
    return role if view.role != role else None


def decide(view: View) -> Plan:
    if not view.connected:
        # Not even the znodes it holds can be known: keep every belief until the session answers.
        return Plan(reason="not connected to ZooKeeper")
    create = view.healthy - view.held
    delete = view.held - view.healthy
    all_healthy = view.healthy == view.services
    if view.active is None:
        return Plan(reason="no site is active yet", create=create, delete=delete, claim=all_healthy)
    if view.active == view.site:
        return Plan(reason="the active znode names this site", create=create, delete=delete,
                    announce=_announce(view, Role.ACTIVE))
    missing = view.services - view.peer_up if view.peer_up is not None else frozenset()
    if missing and all_healthy:
        return Plan(reason=f"site {view.active}'s znode of {', '.join(sorted(missing))} is gone",
                    create=create, delete=delete, take_over=True,
                    announce=_announce(view, Role.ACTIVE))
    reason = (f"site {view.active} is active" if not missing
              else f"site {view.active} lacks {', '.join(sorted(missing))} but this site is unhealthy")
    return Plan(reason=reason, create=create, delete=delete, announce=_announce(view, Role.STANDBY))
