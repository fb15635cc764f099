"""The configuration reference: every key the loader accepts, with its type, default, range and
meaning. docs/configuration.md is generated from it (`python -m consulha.config.reference`);
tests/config/test_reference.py fails when the loader accepts a key that is not here, when a
default here differs from the loader's, or when the page is stale.

Key paths: `services[].check.http` is the key `http` of the `check` of any entry of `services`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

REQUIRED = "required"


@dataclass(frozen=True)
class Key:
    path: str
    type: str
    default: str            # as a config file spells it; REQUIRED; "-" for none
    allowed: str            # the range or the choices the loader checks
    meaning: str


SECTIONS = {
    "": "The site and its group",
    "consul": "`consul`: the local Consul agent",
    "session": "`session`: the lock session and its timing",
    "services": "`services`: what must be healthy for this site to lead",
    "dns": "`dns`: what moves, and where",
    "hooks": "`hooks`: commands on each role change",
    "election": "`election`: who may lead",
    "metrics": "`metrics`: Prometheus and load balancers",
}

KEYS = (
    Key("site", "name", REQUIRED, "a-z, 0-9 and -", "This site's name, unique in the group (`a`, `b`, `fra1`)."),
    Key("group", "name", REQUIRED, "a-z, 0-9 and -", "The active/standby pair this site belongs to; every site "
        "of one group has the same `group` and `key_prefix`."),
    Key("key_prefix", "KV path", "consulha/<group>", "no leading or trailing /, no empty parts or spaces",
        "Where the group's keys live in Consul KV (the lock is `<key_prefix>/leader`)."),
    Key("consul", "mapping", "-", "", "The local Consul agent (on this host)."),
    Key("consul.address", "URL", "http://127.0.0.1:8500", "http:// or https://, scheme://host[:port] only",
        "The local Consul agent's HTTP API."),
    Key("consul.token", "secret", "-", "non-empty", "ACL token, inline. Prefer `token_file`; without either, "
        "$CONSUL_HTTP_TOKEN."),
    Key("consul.token_file", "file", "-", "readable; a warning if group or others may read it",
        "File holding the ACL token (not with `token`)."),
    Key("consul.ca_file", "file", "-", "with an https:// address only", "CA bundle to verify Consul's certificate."),
    Key("consul.cert_file", "file", "-", "with an https:// address only", "Client certificate (mutual TLS)."),
    Key("consul.key_file", "file", "-", "with https:// and `cert_file`", "Client key (mutual TLS)."),
    Key("session", "mapping", "-", "", "The session tied to this site's checks, and the lock's timing."),
    Key("session.ttl", "duration", "10s", "10s..24h; renewals every ttl/4",
        "Consul invalidates the session when renewals stop for this long (up to 2 x ttl in practice)."),
    Key("session.lock_delay", "duration", "1s", "0.5s..60s; lease < lock_delay (checked)",
        "After an invalidation nobody may take the lock for this long. A leader fences itself "
        "`min(ttl, lock_delay)` less 20 % after its last confirmed read, so this must outlast the slowest "
        "consistent read (docs/wan.md)."),
    Key("session.heartbeat_ttl", "duration", "3s", "1s..24h; at most `ttl`",
        "Consul probes the agent's heartbeat every heartbeat_ttl/3 (timeout the same); three failed "
        "probes make it critical: a killed agent within heartbeat_ttl, a frozen one within about twice that."),
    Key("session.heartbeat_address", "IP address", "127.0.0.1", "an address this host can listen on "
        "(`validate` checks)", "Where the agent answers its local Consul agent's heartbeat probes."),
    Key("session.node_checks", "list of check IDs", "[serfHealth]", "no duplicates; [] for none",
        "Node checks the session is tied to besides the service checks and the heartbeat (README: "
        "node checks)."),
    Key("services", "list", REQUIRED, "at least one; names unique", "The site's services: every check must pass "
        "for the site to hold or take the lock."),
    Key("services[].name", "name", REQUIRED, "a-z, A-Z, 0-9, _ and -", "The Consul service name."),
    Key("services[].port", "integer", "-", "1..65535", "The service's port, as registered in Consul."),
    Key("services[].check", "mapping", REQUIRED, "exactly one of http, tcp, script", "The service's health check."),
    Key("services[].check.http", "URL", "-", "http:// or https://", "GET this URL: 2xx passes, 429 warns "
        "(counts as passing), anything else fails (docs/own-probes.md)."),
    Key("services[].check.tcp", "host:port", "-", "a port", "Connect to it: a connection passes."),
    Key("services[].check.script", "command line", "-", "", "Run by the agent, split like a shell line but "
        "without a shell (a relative program path starts at the config's directory); exit 0 passes, 1 warns, "
        "anything else fails; its result reaches Consul as a TTL check."),
    Key("services[].check.interval", "duration", "1s", "0.1s..1h", "How often the check runs."),
    Key("services[].check.timeout", "duration", "min(interval, 10s)", "more than 0, up to 1h",
        "How long one probe may take."),
    Key("services[].check.failures_before_critical", "integer", "1", "1..100",
        "Consecutive failures before the check is critical (debounce)."),
    Key("services[].check.success_before_passing", "integer", "1", "1..100",
        "Consecutive successes before a critical check passes again."),
    Key("dns", "mapping", REQUIRED, "", "The records the leader writes, and how."),
    Key("dns.provider", "choice", "rfc2136", "rfc2136, command", "RFC 2136 updates (BIND, PowerDNS), or an "
        "external command (docs/dns-providers.md)."),
    Key("dns.zone", "DNS name", REQUIRED, "", "The zone of every record that names none."),
    Key("dns.record", "DNS name", "-", "inside `zone`; not under _consulha.", "The single record's name "
        "(or `records`)."),
    Key("dns.type", "choice", "-", "A, AAAA, CNAME", "The single record's type."),
    Key("dns.value", "address or name", "-", "valid for `type`", "The single record's value while this site leads."),
    Key("dns.records", "list", "-", "not with record/type/value; no duplicates; a CNAME alone at its name",
        "Several records that move together (one fenced UPDATE per zone)."),
    Key("dns.records[].record", "DNS name", REQUIRED, "inside its zone", "The record's name."),
    Key("dns.records[].type", "choice", REQUIRED, "A, AAAA, CNAME", "The record's type."),
    Key("dns.records[].value", "address or name", REQUIRED, "valid for `type`", "Its value while this site leads."),
    Key("dns.records[].zone", "DNS name", "dns.zone", "", "The record's zone."),
    Key("dns.ttl", "duration", "30", "1s..24h, whole seconds", "The records' TTL: how long a resolver that is not "
        "flushed keeps the old answer (docs/clients.md)."),
    Key("dns.server", "host:port", "- (required for rfc2136)", "rfc2136 only; port 53 when omitted",
        "The primary that accepts the updates."),
    Key("dns.verify", "list of host:port", "[server]", "port 53 when omitted", "Every authoritative server "
        "clients ask (primary and secondaries): converged means each answers the new values and epoch."),
    Key("dns.tsig", "mapping", "- (required by BIND)", "rfc2136 only", "The TSIG key that signs the updates."),
    Key("dns.tsig.name", "DNS name", REQUIRED, "", "The key's name, as the server knows it."),
    Key("dns.tsig.algorithm", "choice", "hmac-sha256", "hmac-sha256, -sha384, -sha512, -sha224, -sha1",
        "The key's algorithm (hmac-md5 is refused)."),
    Key("dns.tsig.secret", "base64", "-", "not with secret_file", "The key's secret, inline."),
    Key("dns.tsig.secret_file", "file", "-", "base64, or a tsig-keygen key clause for this name",
        "File holding the secret (a warning if group or others may read it)."),
    Key("dns.fencing", "boolean", "true", "", "Keep the `_consulha.<record>` TXT epoch fence as the update's "
        "prerequisite."),
    Key("dns.reconcile_interval", "duration", "10s", "1s..1h", "How often the leader checks DNS still holds its "
        "values (and repairs drift)."),
    Key("dns.timeout", "duration", "2s (command: 10s)", "0.1s..60s", "One DNS request, or one run of the command."),
    Key("dns.command", "list of strings", "- (required for command)", "command only; an executable",
        "The command provider's program and arguments (docs/dns-providers.md)."),
    Key("dns.secret_env", "mapping of NAME: file", "-", "command only; names A-Z, 0-9 and _",
        "Environment variables for the command, each read from a secret file at load."),
    Key("dns.resolvers", "list", "[]", "at least one entry when given; each listed once",
        "Caching resolvers the leader flushes after a switch, then asks until they answer the new value "
        "(docs/clients.md)."),
    Key("dns.resolvers[].unbound", "host:port", "-", "one kind per entry; port 8953 when omitted",
        "An unbound's remote-control address (plain when no TLS files are given: control-use-cert: no)."),
    Key("dns.resolvers[].pdns_recursor", "URL", "-", "one kind per entry", "A PowerDNS Recursor's web server "
        "(its HTTP API)."),
    Key("dns.resolvers[].address", "host:port", "the control host, port 53", "", "Where the resolver answers DNS."),
    Key("dns.resolvers[].control_key", "file", "-", "unbound; with control_cert and server_cert",
        "TLS to unbound's control port: the client key (unbound-control-setup's unbound_control.key)."),
    Key("dns.resolvers[].control_cert", "file", "-", "unbound; with control_key and server_cert",
        "The client certificate (unbound_control.pem)."),
    Key("dns.resolvers[].server_cert", "file", "-", "unbound; with control_key and control_cert",
        "unbound's own certificate, the only authority trusted (unbound_server.pem)."),
    Key("dns.resolvers[].api_key", "secret", "-", "pdns_recursor; not with api_key_file", "The recursor's api-key."),
    Key("dns.resolvers[].api_key_file", "file", "-", "pdns_recursor", "File holding the api-key."),
    Key("hooks", "mapping", "-", "", "Shell commands run on role changes, one at a time, in order."),
    Key("hooks.on_promote", "command", "-", "", "Run (`sh -c`) when this site becomes the leader. Environment: "
        "CONSULHA_EVENT, CONSULHA_SITE, CONSULHA_GROUP, CONSULHA_EPOCH, CONSULHA_REASON."),
    Key("hooks.on_demote", "command", "-", "", "Run when this site stops leading (same environment)."),
    Key("hooks.timeout", "duration", "30s", "1s..1h", "A hook still running then is killed (logged)."),
    Key("election", "mapping", "-", "", "Preference, damping and own probes."),
    Key("election.preferred_site", "name", "-", "a-z, 0-9 and -", "Hand leadership back to this site once it "
        "has been healthy for `failback_delay`."),
    Key("election.failback_delay", "duration", "5m", "0..24h; a warning without preferred_site",
        "How long the preferred site must be healthy before failback."),
    Key("election.leader_probes", "boolean", "true", "", "While leading, probe the HTTP and TCP checks ourselves "
        "and step down on a failure without waiting for Consul (docs/own-probes.md)."),
    Key("election.damping", "mapping", "-", "", "Flap damping (docs/damping.md)."),
    Key("election.damping.enabled", "boolean", "true", "", "Pass over a site that keeps losing leadership "
        "through its own checks while another healthy site exists."),
    Key("election.damping.half_life", "duration", "1m", "1s..24h", "The penalty (1 per failure) halves this "
        "often."),
    Key("election.damping.suppress", "number", "1", "1..100", "Damped from this penalty until it decays to half."),
    Key("election.damping.max_hold_down", "duration", "5m", "1s..7d; at least half_life",
        "The longest a site stays damped."),
    Key("metrics", "mapping", "-", "", "The HTTP endpoint."),
    Key("metrics.listen", "host:port", "- (none)", "an address this host can bind (`validate` checks)",
        "/metrics, /leader, /standby, /health (Prometheus, load balancers)."),
)


def markdown() -> str:
    lines = ["# Configuration reference", "",
             "Every key `consulha` accepts in a config file, generated from "
             "`consulha/config/reference.py` (`python -m consulha.config.reference > docs/configuration.md`; "
             "a test fails when this page, the reference or the loader disagree). Durations take ms, s, m "
             "or h (bare numbers are seconds); relative file paths start at the config file's directory. A "
             "config error names the file, the line and the key path, and exits 2.", ""]
    for section, title in SECTIONS.items():
        lines += [f"## {title}", "", "| key | type | default | allowed | meaning |", "|---|---|---|---|---|"]
        for key in KEYS:
            if key.path.split(".")[0].split("[")[0] == section or (not section and "." not in key.path
                                                                        and key.path not in SECTIONS):
                lines.append(f"| `{key.path}` | {key.type} | {_cell(key.default)} | {key.allowed or '-'} | "
                             f"{key.meaning} |")
        lines.append("")
    return "\n".join(lines)


def _cell(default: str) -> str:
    return default if default in (REQUIRED, "-") or default.startswith("- (") else f"`{default}`"


if __name__ == "__main__":
    sys.stdout.write(markdown())
