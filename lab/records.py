"""Four managed records in two zones, for sites a and b: the multi-record lab used by
tests/test_dns_multi.py and bench/dns_failover.py."""

from __future__ import annotations

from pathlib import Path

import yaml

from consulha.dns.wire import ask
from lab.pair import SITE_VALUES, SitePair

ZONES = ("example.test.", "other.test.")
NAMES = ("app.example.test.", "www.example.test.", "ws.example.test.", "api.other.test.")


def records_of(site: str) -> list[dict]:
    """The config's `dns.records` for `site`: app (A), www (CNAME), ws (A), api.other.test. (A)."""
    ip = SITE_VALUES[site]
    return [{"record": "app.example.test.", "type": "A", "value": ip},
            {"record": "www.example.test.", "type": "CNAME", "value": f"{site}.example.net."},
            {"record": "ws.example.test.", "type": "A", "value": ip},
            {"record": "api.other.test.", "zone": "other.test.", "type": "A", "value": ip}]


def answers_of(site: str) -> dict[tuple[str, str], tuple[str, ...]]:
    """What a server answers once every record names `site`."""
    return {(r["record"], r["type"]): (r["value"],) for r in records_of(site)}


def multi_record_config(pair: SitePair, site: str, verify: list[str], **dns: object) -> str:
    """The pair's config for `site`, with the four records and `verify` ("host:port") servers;
    `dns` sets more keys of the dns section (None removes one)."""
    path = Path(pair.config(site))
    document = yaml.safe_load(path.read_text())
    for key in ("record", "type", "value"):
        document["dns"].pop(key)
    document["dns"].update(records=records_of(site), verify=verify)
    for key, value in dns.items():
        if value is None:
            document["dns"].pop(key, None)
        else:
            document["dns"][key] = value
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return str(path)


def server_answers(server: tuple[str, int]) -> dict[tuple[str, str], tuple[str, ...] | str]:
    """Every record's answer as one consistent snapshot: the records are asked one by one, so
    the zones' SOA serials are read before and after, and the round is repeated if they moved."""
    while True:
        serials = [ask(server, zone, "SOA", timeout=0.5) for zone in ZONES]
        answers = {key: ask(server, *key, timeout=0.5) for key in answers_of("a")}
        if serials == [ask(server, zone, "SOA", timeout=0.5) for zone in ZONES]:
            return answers


def mixed_zones(answers: dict) -> list[str]:
    """Zones in which some records name site a and others site b: half a failover."""
    mixed = []
    for zone in ZONES:
        keys = [key for key in answers if key[0].endswith(zone)]
        sites = {site for key in keys for site in "ab" if answers[key] == answers_of(site)[key]}
        if len(sites) > 1:
            mixed.append(zone)
    return mixed
