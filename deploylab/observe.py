"""What the proof steps look at: DNS answers from the host, the agents' own view over SSH
(`consulha status/history`, systemd's StatusText), and waiting for a condition."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from typing import Callable

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rdatatype

from deploylab.hosts import Lab
from deploylab.playbook import RECORD, SITE_VALUES, ZONE

CONFIG = "/etc/consulha/groups.d/app.yaml"
BILLING_CONFIG = "/etc/consulha/groups.d/billing.yaml"
UNIT = "consulha"   # one process per app host serving both groups
CONSULHA = "/opt/consulha/bin/consulha"
APP_HOST = {"a": "ha", "b": "hb"}
DNS_SERVERS = {"dns1": "10.78.0.31", "dns2": "10.78.0.32"}


class StepFailed(AssertionError):
    pass


def check(condition: bool, message: str) -> None:
    if not condition:
        raise StepFailed(message)


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, step: float = 0.05) -> float:
    """Seconds until `predicate()` held; StepFailed after `timeout`."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise StepFailed(f"not within {timeout:g}s: {what}")
        time.sleep(step)
    return time.monotonic() - started


def query(server: str, name: str, rdtype: str) -> list[str]:
    """The authoritative answer of one server (no recursion, no cache on the way)."""
    request = dns.message.make_query(name, rdtype)
    request.flags &= ~dns.flags.RD
    try:
        response = dns.query.udp(request, server, timeout=1)
    except (dns.exception.Timeout, OSError):
        return []
    return sorted(rdata.to_text().strip('"') for rrset in response.answer
                  if rrset.rdtype == dns.rdatatype.from_text(rdtype) for rdata in rrset)


def record_everywhere(record: str = RECORD) -> set[tuple[str, ...]]:
    """The managed record's answers, one tuple per DNS server."""
    return {tuple(query(address, record, "A")) for address in DNS_SERVERS.values()}


def dns_names(site: str, record: str = RECORD) -> bool:
    """Both DNS servers answer the site's address."""
    return record_everywhere(record) == {(SITE_VALUES[site],)}


def soa_serials() -> dict[str, list[str]]:
    return {name: query(address, ZONE, "SOA") for name, address in DNS_SERVERS.items()}


def fence_epoch(server: str = DNS_SERVERS["dns1"]) -> int | None:
    """The epoch in the `_consulha.` TXT fence record ("epoch=<n> site=<name>")."""
    texts = " ".join(query(server, "_consulha." + RECORD, "TXT"))
    match = re.search(r"\bepoch=(\d+)\b", texts)
    return int(match.group(1)) if match else None


def status(lab: Lab, host: str = "ha", config: str = CONFIG) -> dict:
    return json.loads(lab.ssh(host, f"{CONSULHA} status -c {config} --json", check=False).stdout)


def history(lab: Lab, host: str = "ha", config: str = CONFIG) -> list[dict]:
    return json.loads(lab.ssh(host, f"{CONSULHA} history -c {config} --json").stdout)


def unit(lab: Lab, host: str, *properties: str, name: str = UNIT) -> dict[str, str]:
    output = lab.ssh(host, f"systemctl show {name} " + " ".join(f"-p {p}" for p in properties)).stdout
    return dict(line.split("=", 1) for line in output.splitlines() if "=" in line)


def agent_role(lab: Lab, site: str, group: str = "app") -> str:
    """The role the site's agent last told systemd for the group (the host's
    STATUS=<group>: <role>, epoch N; <group>: ...); "" before READY or while stopping."""
    return group_roles(unit(lab, APP_HOST[site], "StatusText")["StatusText"]).get(group, "")


def group_roles(status_text: str) -> dict[str, str]:
    """{group: role} from a host's StatusText, e.g. "app: leader, epoch 7; billing: standby, epoch None"."""
    roles = {}
    for part in status_text.split("; "):
        group, _, rest = part.partition(": ")
        if rest:
            roles[group] = rest.split(",")[0]
    return roles


def leader_site(lab: Lab, config: str = CONFIG) -> str:
    site = status(lab, config=config)["leader"]["site"]
    check(site in APP_HOST, f"no leader: {site!r}")
    return site


def other(site: str) -> str:
    return "b" if site == "a" else "a"


def newest_history(lab: Lab, after: float, config: str = CONFIG) -> dict:
    """The newest leadership change, which must have happened after wall time `after`."""
    # Events that move no lock (a site's failure for flap damping, pause, cleanup) sit beside them.
    entries = [entry for entry in history(lab, config=config) if entry.get("to")]
    check(bool(entries), "history has no leadership change")
    newest = max(entries, key=lambda e: e["time"])
    check(seconds_since(after, newest["time"]) >= 0, f"no new history entry: newest {newest}")
    return newest


def seconds_since(wall: float, iso: str) -> float:
    """Seconds from wall time `wall` to an agent's ISO timestamp (hosts share this clock)."""
    return datetime.fromisoformat(iso).timestamp() - wall
