"""The config file's sections: `load_config` reads one site's YAML into the model."""

import os
import re
import shutil
from typing import Protocol
from urllib.parse import urlsplit

import yaml

from consulha.config import values
from consulha.config.model import (
    CheckConfig,
    Config,
    ConfigError,
    ConsulConfig,
    DampingConfig,
    DnsConfig,
    ElectionConfig,
    HooksConfig,
    MetricsConfig,
    RecordConfig,
    ServiceConfig,
    SessionConfig,
    TsigConfig,
)
from consulha.config.resolvers import resolvers
from consulha.config.yamlnodes import Document, Mapping
from consulha.core.durations import format_duration
from consulha.core.timing import Timing

_TOP_KEYS = ("site", "group", "key_prefix", "consul", "session", "services", "dns", "hooks", "election",
             "metrics")
_CHECK_KINDS = ("http", "tcp", "script")


class ListenProbe(Protocol):
    """Whether this host can listen where a config says, now (consulha.ops.listen answers). Passed
    in, not imported: the config layer does no network I/O of its own."""

    def heartbeat_problem(self, address: str) -> str | None: ...

    def metrics_problem(self, listen: tuple[str, int], identity: str) -> str | None: ...


def load_config(path: str | os.PathLike, listen_probe: ListenProbe | None = None) -> Config:
    """Load and validate the config file at `path`.

    Raises ConfigError, naming the file, the YAML line (when known) and the key path, for an
    unreadable, empty or malformed file, an unknown or missing key, or an invalid value. With
    `listen_probe` (`consulha validate`), also for a metrics address this host cannot bind now;
    the agent itself only logs that, so a busy port never keeps it out of the election.
    """
    document = Document(os.fspath(path))
    top = Mapping(document, document.compose(), "", _TOP_KEYS)
    site = top.get("site", values.matching(values.SITE_NAME, "a-z, 0-9 and -"))
    group = top.get("group", values.matching(values.SITE_NAME, "a-z, 0-9 and -"))
    key_prefix = top.get("key_prefix", values.key_prefix, f"consulha/{group}")
    sections = dict(
        consul=_consul(top.section("consul", ("address", "token", "token_file", "ca_file", "cert_file", "key_file"))),
        session=_session(top.section("session", ("ttl", "lock_delay", "heartbeat_ttl",
                                                        "heartbeat_address", "node_checks")),
                          listen_probe),
        services=_services(top),
        dns=_dns(top.section("dns", _DNS_KEYS, required=True)),
        hooks=_hooks(top.section("hooks", ("on_promote", "on_demote", "timeout"))),
        election=_election(top.section("election", ("preferred_site", "failback_delay", "damping",
                                                    "leader_probes"))),
        metrics=_metrics(top.section("metrics", ("listen",)), f"{group}/{site}", listen_probe),
    )
    # Warnings are collected while the sections are read, so they are complete only now.
    return Config(
        path=document.path, site=site, group=group, key_prefix=key_prefix, warnings=tuple(document.warnings), **sections
    )


def _consul(consul: Mapping) -> ConsulConfig:
    address = consul.get("address", values.consul_address, ConsulConfig.address)
    if consul.node("token") is not None and consul.node("token_file") is not None:
        raise consul.error("token_file", "give either token or token_file, not both")
    token = (
        consul.get("token", values.secret_text, None)
        or consul.secret_file("token_file")
        or os.environ.get("CONSUL_HTTP_TOKEN")
        or None
    )
    tls_files = {key: consul.file(key) for key in ("ca_file", "cert_file", "key_file")}
    if urlsplit(address).scheme != "https":
        for key, tls_file in tls_files.items():
            if tls_file is not None:
                raise consul.error(key, "is only used with an https:// address")
    if tls_files["key_file"] and not tls_files["cert_file"]:
        raise consul.error("key_file", "needs cert_file as well")
    return ConsulConfig(address=address, token=token, **tls_files)


def _session(session: Mapping, listen_probe: ListenProbe | None) -> SessionConfig:
    ttl = session.get("ttl", values.duration(10, 86400), SessionConfig.ttl)
    lock_delay = session.get("lock_delay", values.lock_delay, SessionConfig.lock_delay)
    heartbeat_ttl = session.get("heartbeat_ttl", values.duration(1, 86400), SessionConfig.heartbeat_ttl)
    if heartbeat_ttl > ttl:
        message = f"must not exceed session.ttl ({format_duration(ttl)}), got {format_duration(heartbeat_ttl)}"
        raise session.error("heartbeat_ttl", message)
    address = session.get("heartbeat_address", values.ip_address, SessionConfig.heartbeat_address)
    if listen_probe is not None:
        problem = listen_probe.heartbeat_problem(address)
        if problem:
            raise session.error("heartbeat_address", problem)
    config = SessionConfig(ttl=ttl, lock_delay=lock_delay, heartbeat_ttl=heartbeat_ttl,
                           heartbeat_address=address, node_checks=_node_checks(session))
    try:
        Timing.of(config)
    except ValueError as problem:
        raise session.error("lock_delay", str(problem)) from None
    return config


def _node_checks(session: Mapping) -> tuple[str, ...]:
    """A list of node check IDs; unlike other lists it may be empty (`[]`: no node check)."""
    if session.node("node_checks") is None:
        return SessionConfig.node_checks
    node = session.node("node_checks")
    if isinstance(node, yaml.SequenceNode) and not node.value:
        return ()
    checks = tuple(session.document.value(item, key_path, values.as_text)
                   for item, key_path in session.items("node_checks"))
    if len(set(checks)) != len(checks):
        raise session.error("node_checks", "lists a check twice")
    return checks


def _services(top: Mapping) -> tuple[ServiceConfig, ...]:
    services: list[ServiceConfig] = []
    first_line_of_name: dict[str, int] = {}
    for node, key_path in top.items("services"):
        service = Mapping(top.document, node, key_path, ("name", "port", "check"))
        name = service.get("name", values.matching(values.SERVICE_NAME, "a-z, A-Z, 0-9, _ and -"))
        if name in first_line_of_name:
            message = f"duplicate service name {name!r} (first used on line {first_line_of_name[name]})"
            raise service.error("name", message)
        first_line_of_name[name] = service.line_of("name")
        port = service.get("port", values.integer(1, 65535), None)
        check = _check(service.section("check", (*_CHECK_KINDS, "interval", "timeout", "failures_before_critical",
                                                        "success_before_passing"), required=True))
        services.append(ServiceConfig(name=name, check=check, port=port))
    return tuple(services)


def _check(check: Mapping) -> CheckConfig:
    kinds = [kind for kind in _CHECK_KINDS if check.node(kind) is not None]
    if not kinds:
        raise ConfigError(check.document.path, check.key_path, f"needs one of {', '.join(_CHECK_KINDS)}", check.line)
    if len(kinds) > 1:
        raise ConfigError(
            check.document.path, check.key_path,
            f"give exactly one of {', '.join(_CHECK_KINDS)}, not {' and '.join(kinds)}", check.line_of(kinds[1]),
        )
    kind = kinds[0]
    target = check.get(kind, {"http": values.url, "tcp": values.tcp_target, "script": values.as_text}[kind])
    interval = check.get("interval", values.duration(0.1, 3600), 1.0)
    timeout = check.get("timeout", values.duration(0, 3600), min(interval, 10.0))
    if timeout == 0:
        raise check.error("timeout", "must be greater than 0")
    return CheckConfig(kind=kind, target=target, interval=interval, timeout=timeout,
                       failures_before_critical=check.get("failures_before_critical", values.integer(1, 100), 1),
                       success_before_passing=check.get("success_before_passing", values.integer(1, 100), 1))


_DNS_KEYS = (
    "provider", "zone", "record", "type", "value", "records", "ttl", "server", "verify", "tsig", "fencing",
    "reconcile_interval", "timeout", "command", "secret_env", "resolvers",
)
_RECORD_KEYS = ("record", "type", "value", "zone")
# Keys that only one provider reads: given to the other, they would be silently ignored.
_PROVIDER_ONLY_KEYS = {"rfc2136": ("server", "tsig"), "command": ("command", "secret_env")}
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")


def _dns(dns: Mapping) -> DnsConfig:
    provider = dns.get("provider", values.one_of(*_PROVIDER_ONLY_KEYS), "rfc2136")
    for other, keys in _PROVIDER_ONLY_KEYS.items():
        for key in keys:
            if other != provider and dns.node(key) is not None:
                raise dns.error(key, f"is read only by provider {other}, not {provider}")
    zone = dns.get("zone", values.dns_name)
    records = _records(dns, zone)
    server = dns.get("server", values.host_port(53)) if provider == "rfc2136" else None
    verify = tuple(
        dns.document.value(node, key_path, values.host_port(53))
        for node, key_path in dns.items("verify", default=[] if server else None)
    )
    return DnsConfig(
        provider=provider,
        zone=zone,
        records=records,
        ttl=dns.get("ttl", values.dns_ttl, 30),
        server=server,
        verify=verify or (server,),
        tsig=_tsig(dns) if dns.node("tsig") is not None else None,
        fencing=dns.get("fencing", values.boolean, True),
        reconcile_interval=dns.get("reconcile_interval", values.duration(1, 3600), 10.0),
        # A command usually calls an HTTP API: give it longer than one DNS query by default.
        timeout=dns.get("timeout", values.duration(0.1, 60), 2.0 if provider == "rfc2136" else 10.0),
        command=_command(dns) if provider == "command" else (),
        secret_env=_secret_env(dns),
        resolvers=resolvers(dns),
    )


def _records(dns: Mapping, default_zone: str) -> tuple[RecordConfig, ...]:
    """The single-record form (record, type, value) or the list `records`, not both."""
    single = [key for key in ("record", "type", "value") if dns.node(key) is not None]
    if dns.node("records") is not None:
        if single:
            raise dns.error(single[0], "give either records or record/type/value, not both")
        entries = [Mapping(dns.document, node, key_path, _RECORD_KEYS) for node, key_path in dns.items("records")]
    else:
        entries = [dns]
    records: list[RecordConfig] = []
    first_line: dict[tuple[str, str], int] = {}
    for entry in entries:
        record = _record(entry, default_zone)
        same_name = [key for key in first_line if key[0] == record.name]
        if (record.name, record.type) in first_line:
            raise entry.error("record", f"duplicate record {record.name} {record.type} "
                                        f"(first given on line {first_line[record.name, record.type]})")
        if same_name and "CNAME" in {record.type, *(rtype for _, rtype in same_name)}:
            other = same_name[0]
            raise entry.error("record", f"a CNAME cannot share its name with other types: {record.name} is also "
                                        f"{other[1]} on line {first_line[other]}")
        first_line[record.name, record.type] = entry.line_of("record")
        records.append(record)
    return tuple(records)


def _record(entry: Mapping, default_zone: str) -> RecordConfig:
    zone = entry.get("zone", values.dns_name, default_zone)
    name = entry.get("record", values.dns_name)
    if name != zone and not name.endswith("." + zone):
        raise entry.error("record", f"{name} is not inside zone {zone}")
    if name.startswith("_consulha."):
        raise entry.error("record", "names under _consulha. are reserved for the fence TXT records")
    record_type = entry.get("type", values.record_type)
    if record_type == "CNAME" and name == zone:
        raise entry.error("record", "a CNAME cannot sit at the zone apex, next to the zone's SOA and NS records")
    return RecordConfig(name=name, type=record_type, value=entry.get("value", values.record_value(record_type)),
                        zone=zone)


def _command(dns: Mapping) -> tuple[str, ...]:
    argv = [dns.document.value(node, key_path, values.as_text) for node, key_path in dns.items("command")]
    program = argv[0]
    if os.sep in program:  # a path, relative to the config's directory like every file
        program = os.path.normpath(os.path.join(dns.document.directory, os.path.expanduser(program)))
    else:
        program = shutil.which(program) or program
    if not os.path.isfile(program) or not os.access(program, os.X_OK):
        raise dns.error("command", f"{argv[0]} is not an executable file")
    return (program, *argv[1:])


def _secret_env(dns: Mapping) -> tuple[tuple[str, str], ...]:
    """Environment variable -> the content of a secret file, read now so that an unreadable
    file stops the agent at start rather than at the first failover."""
    node = dns.node("secret_env")
    if node is None:
        return ()
    names = [key.value for key, _ in node.value] if isinstance(node, yaml.MappingNode) else []
    secrets = Mapping(dns.document, node, dns.path_of("secret_env"), names)
    for name in names:
        if not _ENV_NAME.fullmatch(name):
            raise secrets.error(name, "is not an environment variable name: use A-Z, 0-9 and _")
    return tuple((name, secrets.secret_file(name)) for name in names)


def _tsig(dns: Mapping) -> TsigConfig:
    tsig = dns.section("tsig", ("name", "algorithm", "secret", "secret_file"))
    name = tsig.get("name", values.dns_name).removesuffix(".")
    algorithm = tsig.get("algorithm", values.tsig_algorithm, "hmac-sha256")
    given = [key for key in ("secret", "secret_file") if tsig.node(key) is not None]
    if len(given) != 1:
        message = "give either secret or secret_file, not both" if given else "needs secret or secret_file"
        raise ConfigError(tsig.document.path, tsig.key_path, message, tsig.line_of(given[-1]) if given else tsig.line)
    if given == ["secret"]:
        return TsigConfig(name=name, algorithm=algorithm, secret=tsig.get("secret", values.tsig_secret))
    try:
        secret = values.tsig_secret(values.secret_from_key_file(tsig.secret_file("secret_file"), name, algorithm))
    except ValueError as problem:
        raise tsig.error("secret_file", str(problem)) from None
    return TsigConfig(name=name, algorithm=algorithm, secret=secret)


def _hooks(hooks: Mapping) -> HooksConfig:
    return HooksConfig(
        on_promote=hooks.get("on_promote", values.as_text, None),
        on_demote=hooks.get("on_demote", values.as_text, None),
        timeout=hooks.get("timeout", values.duration(1, 3600), HooksConfig.timeout),
    )


def _election(election: Mapping) -> ElectionConfig:
    preferred_site = election.get("preferred_site", values.matching(values.SITE_NAME, "a-z, 0-9 and -"), None)
    failback_delay = election.get("failback_delay", values.duration(0, 86400), ElectionConfig.failback_delay)
    if preferred_site is None and election.node("failback_delay") is not None:
        warning = election.error("failback_delay", "has no effect without election.preferred_site")
        election.document.warnings.append(str(warning))
    damping = _damping(election.section("damping", ("enabled", "half_life", "suppress", "max_hold_down")))
    return ElectionConfig(preferred_site=preferred_site, failback_delay=failback_delay, damping=damping,
                          leader_probes=election.get("leader_probes", values.boolean,
                                                     ElectionConfig.leader_probes))


def _damping(damping: Mapping) -> DampingConfig:
    half_life = damping.get("half_life", values.duration(1, 86400), DampingConfig.half_life)
    max_hold_down = damping.get("max_hold_down", values.duration(1, 7 * 86400), DampingConfig.max_hold_down)
    if max_hold_down < half_life:
        # Below one half-life the penalty could never reach `suppress`: nothing would be damped.
        raise damping.error("max_hold_down", f"must be at least half_life ({format_duration(half_life)}), "
                                             f"got {format_duration(max_hold_down)}")
    return DampingConfig(enabled=damping.get("enabled", values.boolean, DampingConfig.enabled),
                         half_life=half_life, suppress=damping.get("suppress", values.number(1, 100),
                                                                   DampingConfig.suppress),
                         max_hold_down=max_hold_down)


def _metrics(metrics: Mapping, identity: str, listen_probe: ListenProbe | None) -> MetricsConfig:
    listen = metrics.get("listen", values.host_port(default_port=None), None)
    if listen is not None and listen_probe is not None:
        problem = listen_probe.metrics_problem(listen, identity)
        if problem:
            raise metrics.error("listen", problem)
    return MetricsConfig(listen=listen)
