"""Which Consul versions this release was tested on and reviewed for (docs/consul-api.md), and
what to say about the versions a cluster actually runs. Pure: the adapter reads the answers.

Version strings differ between releases: /v1/agent/self says "1.8.7" on 1.8 and may carry build
metadata on newer ones ("1.16.1+ent"); a member's `build` tag is "<version>:<revision>". One
parser takes all of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

# Kept equal to `tested` and `reviewed_up_to` of docs/consul-api.yaml (a fast test compares).
TESTED = (1, 8)
REVIEWED_UP_TO = (1, 21)
# Sessions list their checks in NodeChecks, which Consul knows since 1.7.0; an older one ignores
# the field and the session would carry serfHealth only: a failing service check would not
# release the lock.
OLDEST_SUPPORTED = (1, 7)

_LEFT = 3  # serf member status: 1 alive, 3 left, 4 failed
_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?")


class Support(Enum):
    UNSUPPORTED = "unsupported"
    UNTESTED = "reviewed, not tested"
    TESTED = "tested"
    REVIEWED = "reviewed on paper"
    NEWER = "newer than reviewed"
    UNKNOWN = "unknown"

    @property
    def warns(self) -> bool:
        return self in (Support.UNTESTED, Support.NEWER, Support.UNKNOWN)


@dataclass(frozen=True)
class ConsulVersion:
    """A Consul release as one agent reports it."""
    text: str                      # as reported, e.g. "1.16.1+ent"
    number: tuple[int, int, int] | None

    @classmethod
    def parse(cls, text: str | None) -> "ConsulVersion":
        text = (text or "").split(":", 1)[0].strip()  # a build tag carries ":<revision>"
        match = _VERSION.match(text)
        number = (int(match[1]), int(match[2]), int(match[3] or 0)) if match else None
        return cls(text or "?", number)

    @property
    def support(self) -> Support:
        if self.number is None:
            return Support.UNKNOWN
        series = self.number[:2]
        if series < OLDEST_SUPPORTED:
            return Support.UNSUPPORTED
        if series < TESTED:
            return Support.UNTESTED
        if series == TESTED:
            return Support.TESTED
        return Support.REVIEWED if series <= REVIEWED_UP_TO else Support.NEWER


@dataclass(frozen=True)
class ClusterVersions:
    """The local agent's version and each server's (by member name)."""
    local: ConsulVersion
    servers: tuple[tuple[str, ConsulVersion], ...]

    def lines(self) -> list[tuple[Support, str]]:
        """One sentence per agent, with what this release knows about its version."""
        found = [("local agent", self.local)] + [(f"server {name}", v) for name, v in self.servers]
        sentences = [(version.support, f"{who}: Consul {version.text} ({_verdict(version)})")
                     for who, version in found]
        if not self.servers:
            sentences.append((Support.UNKNOWN, "servers: none listed by /v1/agent/members "
                                               "(no members with role=consul readable: ACL node:read?)"))
        return sentences

    @property
    def worst(self) -> Support:
        order = [Support.UNSUPPORTED, Support.UNKNOWN, Support.NEWER, Support.UNTESTED,
                 Support.REVIEWED, Support.TESTED]
        return min((support for support, _ in self.lines()), key=order.index)


def _verdict(version: ConsulVersion) -> str:
    tested = ".".join(map(str, TESTED))
    reviewed = ".".join(map(str, REVIEWED_UP_TO))
    oldest = ".".join(map(str, OLDEST_SUPPORTED))
    return {
        Support.UNSUPPORTED: f"unsupported: older than {oldest}, sessions would ignore NodeChecks",
        Support.UNTESTED: f"reviewed but not tested; tested on {tested}",
        Support.TESTED: "tested",
        Support.REVIEWED: f"reviewed up to {reviewed}, tested on {tested}",
        Support.NEWER: f"newer than reviewed ({reviewed}); tested on {tested}: see docs/consul-api.md",
        Support.UNKNOWN: "version not readable",
    }[version.support]


def server_versions(members: list[dict]) -> tuple[tuple[str, ConsulVersion], ...]:
    """Servers among /v1/agent/members (tag role=consul, not left) with the version of their
    build tag."""
    return tuple((member.get("Name", "?"), ConsulVersion.parse(member["Tags"].get("build")))
                 for member in members
                 if (member.get("Tags") or {}).get("role") == "consul" and member.get("Status") != _LEFT)
