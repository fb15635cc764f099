"""The config model: frozen dataclasses every module imports, and ConfigError.

Reading and validating YAML lives in `consulha.config.sections` (entry point `load_config`);
nothing here knows about YAML.
"""

import os
from dataclasses import dataclass, field
from urllib.parse import urlsplit

# A leader fences itself min(ttl, lock_delay) minus a margin after its session may have died;
# below this there is no usable margin left.
__all__ = ["MIN_LOCK_DELAY", "TSIG_ALGORITHMS", "ConsulConfig", "SessionConfig", "CheckConfig",
           "ServiceConfig", "TsigConfig", "RecordConfig", "UnboundTls", "ResolverConfig", "DnsConfig", "HooksConfig", "ElectionConfig", "DampingConfig",
           "MetricsConfig", "Config",
           "ConfigError"]

MIN_LOCK_DELAY = 0.5
TSIG_ALGORITHMS = ("hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224", "hmac-sha1")


@dataclass(frozen=True)
class ConsulConfig:
    address: str = "http://127.0.0.1:8500"
    token: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    @property
    def scheme(self) -> str:
        return urlsplit(self.address).scheme

    @property
    def host(self) -> str:
        return urlsplit(self.address).hostname or ""

    @property
    def port(self) -> int:
        """The address's port, or the scheme's standard port (80/443) when the address has none."""
        parts = urlsplit(self.address)
        return parts.port or (443 if parts.scheme == "https" else 80)


@dataclass(frozen=True)
class SessionConfig:
    ttl: float = 10.0
    lock_delay: float = 1.0
    heartbeat_ttl: float = 3.0
    # Where this process answers the local Consul agent's heartbeat probes (any free port).
    heartbeat_address: str = "127.0.0.1"
    # Node-level checks the session is tied to besides the service checks and the heartbeat.
    node_checks: tuple[str, ...] = ("serfHealth",)


@dataclass(frozen=True)
class CheckConfig:
    kind: str
    target: str
    interval: float = 1.0
    timeout: float = 1.0
    # Debounce (keepalived's fall/rise): this many failed probes in a row before the check is
    # critical, this many passing ones before it passes again. 1 = no debounce.
    failures_before_critical: int = 1
    success_before_passing: int = 1


@dataclass(frozen=True)
class ServiceConfig:
    name: str
    check: CheckConfig
    port: int | None = None


@dataclass(frozen=True)
class TsigConfig:
    name: str
    algorithm: str = "hmac-sha256"
    secret: str = field(default="", repr=False)


@dataclass(frozen=True)
class RecordConfig:
    """One managed record: `name` (absolute, inside `zone`) holds `value` while this site leads."""

    name: str
    type: str
    value: str
    zone: str


@dataclass(frozen=True)
class UnboundTls:
    """unbound-control's TLS files (unbound-control-setup writes them), absolute paths."""

    control_key: str
    control_cert: str
    server_cert: str


@dataclass(frozen=True)
class ResolverConfig:
    """A caching resolver the leader flushes after a switch, then asks until it answers the
    new value. `kind` "unbound": `control` is its remote-control host and port, `tls` None for
    a server that sets control-use-cert: no; "pdns_recursor": `url` is its web server's base
    URL, `api_key` its X-API-Key. `address`: where it answers DNS (the control host, port 53)."""

    kind: str
    address: tuple[str, int]
    control: tuple[str, int] | None = None
    tls: UnboundTls | None = None
    url: str | None = None
    api_key: str = field(default="", repr=False)

    @property
    def name(self) -> str:
        """ "unbound 127.0.0.1:8953" or "pdns_recursor http://127.0.0.1:8082": status, metrics, logs."""
        if self.control is not None:
            host, port = self.control
            return f"{self.kind} {f'[{host}]' if ':' in host else host}:{port}"
        return f"{self.kind} {self.url}"


@dataclass(frozen=True)
class DnsConfig:
    """The records to move and how. Records of one zone move in one fenced write; the zones are
    written in the order their first record appears in `records`."""

    zone: str
    records: tuple[RecordConfig, ...]
    server: tuple[str, int] | None
    verify: tuple[tuple[str, int], ...]
    ttl: int = 30
    tsig: TsigConfig | None = None
    fencing: bool = True
    reconcile_interval: float = 10.0
    timeout: float = 2.0
    provider: str = "rfc2136"
    command: tuple[str, ...] = ()
    # Environment variable -> secret read from a file at load time, for the command provider.
    secret_env: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    resolvers: tuple[ResolverConfig, ...] = ()

    @property
    def record(self) -> str:
        """The first record's name: the one whose value is the site's "address"."""
        return self.records[0].name

    @property
    def type(self) -> str:
        return self.records[0].type

    @property
    def value(self) -> str:
        """The first record's value, published as this site's address in Consul."""
        return self.records[0].value

    @property
    def zones(self) -> tuple[str, ...]:
        """Every zone with a managed record, in the fixed order they are written."""
        return tuple(dict.fromkeys(record.zone for record in self.records))

    def records_in(self, zone: str) -> tuple[RecordConfig, ...]:
        return tuple(record for record in self.records if record.zone == zone)

    def fence_of(self, zone: str) -> str:
        """The zone's fence TXT: `_consulha.` + the zone's alphabetically first record name
        (for a single record, `_consulha.<record>` as always). Not the first listed: every site
        must fence on the same name, whatever order its config lists the records in."""
        return "_consulha." + min(record.name for record in self.records_in(zone))

    @property
    def fence_record(self) -> str:
        return self.fence_of(self.records[0].zone)


@dataclass(frozen=True)
class HooksConfig:
    on_promote: str | None = None
    on_demote: str | None = None
    timeout: float = 30.0


@dataclass(frozen=True)
class DampingConfig:
    """Flap damping (consulha.core.damping): each lost leadership adds 1 to the site's penalty,
    which halves every `half_life`; at `suppress` the site is damped until the penalty has decayed
    to half of it, never longer than `max_hold_down` after its last failure. A few failures in
    quick succession weigh a little less than their number: 2.5 means the third."""
    enabled: bool = True
    half_life: float = 60.0
    suppress: float = 1.0
    max_hold_down: float = 300.0


@dataclass(frozen=True)
class ElectionConfig:
    preferred_site: str | None = None
    failback_delay: float = 300.0
    damping: DampingConfig = DampingConfig()
    # The leader probes its own HTTP/TCP services itself and steps down on a failure before
    # Consul's copy of the check (one result behind while leading) invalidates its session:
    # the standby then takes the released lock without waiting out the lock-delay.
    leader_probes: bool = True


@dataclass(frozen=True)
class MetricsConfig:
    """Where /metrics and the health endpoints listen; None: no listener."""
    listen: tuple[str, int] | None = None


@dataclass(frozen=True)
class Config:
    path: str
    site: str
    group: str
    key_prefix: str
    consul: ConsulConfig
    session: SessionConfig
    services: tuple[ServiceConfig, ...]
    dns: DnsConfig
    hooks: HooksConfig = HooksConfig()
    election: ElectionConfig = ElectionConfig()
    metrics: MetricsConfig = MetricsConfig()
    warnings: tuple[str, ...] = ()


class ConfigError(Exception):
    """A config problem; str() is 'FILE:LINE: key.path: message', LINE omitted when unknown."""

    def __init__(self, file: str | os.PathLike, key_path: str, message: str, line: int | None = None):
        super().__init__(os.fspath(file), key_path, message, line)
        self.file = os.fspath(file)
        self.key_path = key_path
        self.message = message
        self.line = line

    def __str__(self) -> str:
        location = self.file if self.line is None else f"{self.file}:{self.line}"
        return ": ".join(part for part in (location, self.key_path, self.message) if part)
