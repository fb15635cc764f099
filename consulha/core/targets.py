"""Who may take over from a leader: the one answer used by the agent (serving a handover request
or a maintenance mark) and by the operator commands (checking before they write anything)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Collection

from consulha.core.reasons import Cause, Reason


@dataclass(frozen=True)
class Peers:
    """The other sites as Consul shows them. live: holds its candidate key with a live session;
    healthy: every check of its services passes."""
    live: frozenset[str]
    healthy: frozenset[str]


def choose_target(wanted: str | None, leader_site: str | None, peers: Peers,
                  in_maintenance: Collection[str], damped: Collection[str] = ()
                  ) -> tuple[str | None, Reason | None]:
    """The site to hand leadership to, or None and why not. `wanted` None: any eligible site
    (the first by name that is not damped, so every caller picks the same one); a site named
    explicitly may be damped (an operator's word overrides flap damping)."""
    options = sorted((site for site in peers.live & peers.healthy
                      if site != leader_site and site not in in_maintenance),
                     key=lambda site: (site in damped, site))
    if wanted is None:
        if options:
            return options[0], None
        return None, Reason(Cause.NO_TARGET, "no healthy candidate to hand over to")
    if wanted == leader_site:
        return None, Reason(Cause.TARGET_IS_LEADER, f"site {wanted} is already the leader")
    if wanted not in peers.live:
        return None, Reason(Cause.TARGET_NOT_CANDIDATE, f"site {wanted} is not a live candidate "
                                                        f"(unknown, stopped or unhealthy)")
    if wanted in in_maintenance:
        return None, Reason(Cause.TARGET_IN_MAINTENANCE, f"site {wanted} is in maintenance")
    if wanted not in options:
        return None, Reason(Cause.TARGET_UNHEALTHY, f"site {wanted} has failing checks")
    return wanted, None
