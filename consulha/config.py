"""Load and validate one site's YAML config into frozen dataclasses.

The file is composed into YAML nodes (safe loader only) and every value is read from its node,
so each problem is reported as ``FILE:LINE: key.path: message``. Secrets (Consul token, TSIG
secret) never appear in error messages, warnings or ``repr()``.
"""

import base64
import binascii
import difflib
import ipaddress
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable
from urllib.parse import urlsplit

import yaml

from consulha.durations import format_duration, parse_duration

# A leader fences itself min(ttl, lock_delay) minus a margin after its session may have died;
# below this there is no usable margin left.
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


@dataclass(frozen=True)
class CheckConfig:
    kind: str
    target: str
    interval: float = 1.0
    timeout: float = 1.0


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
class DnsConfig:
    zone: str
    record: str
    type: str
    value: str
    server: tuple[str, int]
    verify: tuple[tuple[str, int], ...]
    ttl: int = 30
    tsig: TsigConfig | None = None
    fencing: bool = True
    reconcile_interval: float = 10.0
    timeout: float = 2.0
    provider: str = "rfc2136"

    @property
    def fence_record(self) -> str:
        return "_consulha." + self.record


@dataclass(frozen=True)
class HooksConfig:
    on_promote: str | None = None
    on_demote: str | None = None
    timeout: float = 30.0


@dataclass(frozen=True)
class ElectionConfig:
    preferred_site: str | None = None
    failback_delay: float = 300.0


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


# --- value converters: take a constructed YAML value, return the config value or raise ValueError.
# Messages may quote the value, except in the converters used for secrets.

_SITE_NAME = re.compile(r"[a-z0-9-]+")
_SERVICE_NAME = re.compile(r"[a-zA-Z0-9_-]+")
_DNS_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")
_YAML_TYPE_NAMES = {bool: "a boolean", int: "an integer", float: "a number", list: "a list", dict: "a mapping"}


def _text(value: Any) -> str:
    if not isinstance(value, str):
        kind = _YAML_TYPE_NAMES.get(type(value), type(value).__name__)
        raise ValueError(f"expected a string, got {kind} (quote it if you meant text)")
    if not value.strip():
        raise ValueError("must not be empty")
    return value.strip()


def _matching(pattern: re.Pattern, what: str) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        text = _text(value)
        if not pattern.fullmatch(text):
            raise ValueError(f"{text!r} is not a valid name: use only {what}")
        return text
    return convert


def _one_of(*choices: str) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        text = _text(value)
        if text not in choices:
            raise ValueError(f"{text!r} is not one of {', '.join(choices)}")
        return text
    return convert


def _integer(low: int, high: int) -> Callable[[Any], int]:
    def convert(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected an integer, got {value!r}")
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}, got {value}")
        return value
    return convert


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def _duration(low: float, high: float) -> Callable[[Any], float]:
    def convert(value: Any) -> float:
        seconds = parse_duration(value)
        if not low <= seconds <= high:
            raise ValueError(
                f"must be between {format_duration(low)} and {format_duration(high)}, got {format_duration(seconds)}"
            )
        return seconds
    return convert


def _lock_delay(value: Any) -> float:
    seconds = _duration(0, 60)(value)
    if seconds < MIN_LOCK_DELAY:
        raise ValueError(
            f"{format_duration(seconds)} is too short, use at least {format_duration(MIN_LOCK_DELAY)}: lock_delay "
            "is the only grace a leader has to notice that Consul invalidated its session before another site "
            "can take the lock (it fences itself after min(ttl, lock_delay) minus a safety margin)"
        )
    return seconds


def _dns_ttl(value: Any) -> int:
    seconds = value if isinstance(value, int) and not isinstance(value, bool) else parse_duration(value)
    if seconds != int(seconds):
        raise ValueError(f"must be whole seconds, got {format_duration(seconds)}")
    return _integer(1, 86400)(int(seconds))


def _key_prefix(value: Any) -> str:
    text = _text(value)
    if text.startswith("/") or text.endswith("/") or "//" in text or any(char.isspace() for char in text):
        raise ValueError(f"{text!r} must be a Consul KV path without leading/trailing slash, empty parts or spaces")
    return text


def _tcp_target(value: Any) -> str:
    _host_port(default_port=None)(value)
    return _text(value)


def _record_type(value: Any) -> str:
    return _one_of("A", "AAAA", "CNAME")(_text(value).upper())


def _url(value: Any) -> str:
    text = _text(value)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{text!r} is not an http:// or https:// URL with a host")
    parts.port  # raises ValueError for a non-numeric or out-of-range port
    return text


def _consul_address(value: Any) -> str:
    address = _url(value).rstrip("/")
    parts = urlsplit(address)
    if parts.path or parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"{address!r} must be scheme://host[:port] only, e.g. http://127.0.0.1:8500")
    return address


def _is_hostname(text: str) -> bool:
    labels = text.removesuffix(".").split(".")
    # An all-digit last label is a mistyped IPv4 address such as 192.0.2.300, not a name.
    return len(text) <= 253 and all(_DNS_LABEL.fullmatch(label) for label in labels) and not labels[-1].isdigit()


def _dns_name(value: Any) -> str:
    """Return the name lowercased and absolute (with its trailing dot)."""
    text = _text(value).lower()
    if not _is_hostname(text):
        raise ValueError(f"{text!r} is not a valid DNS name")
    return text if text.endswith(".") else text + "."


def _host_port(default_port: int | None) -> Callable[[Any], tuple[str, int]]:
    """Read "host:port", "[v6]:port", or (with a default port) "host" / a bare IPv6 address."""
    def convert(value: Any) -> tuple[str, int]:
        text = _text(value)
        if text.startswith("["):
            host, _, rest = text[1:].partition("]")
            port_text = rest[1:] if rest.startswith(":") else rest or None
            valid_host = _is_ip(host, version=6)
        else:
            # Several colons can only be a bare IPv6 address, which cannot carry a port.
            host, _, port_text = text.partition(":") if text.count(":") == 1 else (text, "", None)
            valid_host = _is_ip(host) or _is_hostname(host)
        if not valid_host:
            raise ValueError(f"{text!r} does not start with a valid host name or IP address")
        if port_text is None:
            if default_port is None:
                raise ValueError(f"{text!r} needs a port: write host:port")
            return host, default_port
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise ValueError(f"{text!r} has an invalid port: expected 1..65535")
        return host, int(port_text)
    return convert


def _is_ip(text: str, version: int | None = None) -> bool:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    return version is None or address.version == version


def _record_value(record_type: str) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        text = _text(value)
        if record_type == "CNAME":
            return _dns_name(text)
        address_class = ipaddress.IPv4Address if record_type == "A" else ipaddress.IPv6Address
        try:
            return str(address_class(text))
        except ValueError:
            version = 4 if record_type == "A" else 6
            raise ValueError(f"{text!r} is not an IPv{version} address, as type {record_type} needs") from None
    return convert


def _tsig_algorithm(value: Any) -> str:
    algorithm = _text(value).lower().removesuffix(".")
    if algorithm == "hmac-md5":
        raise ValueError(
            "hmac-md5 is refused: MD5 is broken and RFC 8945 says not to use it for TSIG; use hmac-sha256 "
            "(generate a key with `tsig-keygen -a hmac-sha256`)"
        )
    return _one_of(*TSIG_ALGORITHMS)(algorithm)


def _secret_text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("expected a non-empty string")
    return value.strip()


def _tsig_secret(value: Any) -> str:
    secret = _secret_text(value)
    try:
        base64.b64decode(secret, validate=True)
    except binascii.Error:
        raise ValueError("is not valid base64 (as printed by tsig-keygen)") from None
    return secret


_BIND_KEY_CLAUSE = re.compile(r'key\s+"?([^"\s{]+)"?\s*\{(.*?)\}\s*;', re.S)
_BIND_KEY_STATEMENT = re.compile(r'(algorithm|secret)\s+"?([^";\s]+)"?\s*;')


def _secret_from_key_file(content: str, key_name: str, algorithm: str) -> str:
    """Return the secret of a bare-base64 file or of a tsig-keygen `key "name" {...};` clause.

    Raises ValueError (without the secret) when the clauses hold no key named key_name, or the
    matching clause has no secret or names a different algorithm.
    """
    clauses = _BIND_KEY_CLAUSE.findall(content)
    if not clauses:
        return content.strip()
    for clause_name, body in clauses:
        if clause_name.lower().removesuffix(".") == key_name.lower().removesuffix("."):
            statements = dict(_BIND_KEY_STATEMENT.findall(body))
            if statements.get("algorithm", algorithm).lower() != algorithm:
                raise ValueError(
                    f"key {clause_name!r} uses {statements['algorithm']}, but dns.tsig.algorithm is {algorithm}"
                )
            if "secret" not in statements:
                raise ValueError(f"key {clause_name!r} has no secret statement")
            return statements["secret"]
    raise ValueError(f"holds no key named {key_name!r} (found {', '.join(name for name, _ in clauses)})")


# --- reading YAML nodes

_REQUIRED = object()
_NULL_TAG = "tag:yaml.org,2002:null"
_NODE_KINDS = {yaml.MappingNode: "a mapping", yaml.SequenceNode: "a list", yaml.ScalarNode: "a single value"}


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


class _Document:
    """The config file being loaded: where errors point, where relative paths start, what was warned."""

    def __init__(self, path: str):
        self.path = path
        self.directory = os.path.dirname(os.path.abspath(path))
        self.constructor = yaml.constructor.SafeConstructor()
        self.warnings: list[str] = []

    def compose(self) -> yaml.Node:
        """Return the root node; raise ConfigError if the file is unreadable, not YAML, or empty."""
        try:
            with open(self.path, encoding="utf-8") as stream:
                text = stream.read()
        except OSError as problem:
            raise ConfigError(self.path, "", f"cannot read config file: {problem.strerror or problem}") from None
        except UnicodeDecodeError:
            raise ConfigError(self.path, "", "config file is not valid UTF-8") from None
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as problem:
            raise self.yaml_error(problem) from None
        if root is None:
            raise ConfigError(self.path, "", "config file is empty")
        return root

    def yaml_error(self, problem: yaml.YAMLError, key_path: str = "") -> ConfigError:
        # Only the short problem text: str(problem) quotes a snippet of the file, which may hold a secret.
        mark = getattr(problem, "problem_mark", None)
        reason = getattr(problem, "problem", None) or getattr(problem, "reason", None) or type(problem).__name__
        return ConfigError(self.path, key_path, f"invalid YAML: {reason}", None if mark is None else mark.line + 1)

    def value(self, node: yaml.Node, key_path: str, convert: Callable[[Any], Any]) -> Any:
        """Return convert(the node's value); raise ConfigError at the node's line if that fails."""
        if not isinstance(node, yaml.ScalarNode):
            message = f"expected a single value, got {_NODE_KINDS[type(node)]}"
            raise ConfigError(self.path, key_path, message, _line(node))
        try:
            return convert(self.constructor.construct_object(node))
        except yaml.YAMLError as problem:
            raise self.yaml_error(problem, key_path) from None
        except ValueError as problem:
            raise ConfigError(self.path, key_path, str(problem), _line(node)) from None


class _Mapping:
    """One YAML mapping of a config section; keys outside `allowed` and duplicate keys are errors."""

    def __init__(
        self, document: _Document, node: yaml.Node, key_path: str, allowed: Iterable[str], line: int | None = None
    ):
        if not isinstance(node, yaml.MappingNode):
            problem = f"must be a mapping, got {_NODE_KINDS[type(node)]}"
            message = problem if key_path else f"the top level {problem}"
            raise ConfigError(document.path, key_path, message, line or _line(node))
        try:
            document.constructor.flatten_mapping(node)  # resolves YAML merge keys (<<: *defaults)
        except yaml.YAMLError as problem:
            raise document.yaml_error(problem, key_path) from None
        self.document = document
        self.key_path = key_path
        self.line = line or _line(node)
        self.entries: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        allowed = sorted(allowed)
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key is None:
                raise ConfigError(document.path, key_path, "keys must be plain names", _line(key_node))
            if key in self.entries:
                first_line = _line(self.entries[key][0])
                message = f"duplicate key (first given on line {first_line})"
                raise ConfigError(document.path, self.path_of(key), message, _line(key_node))
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"expected one of: {', '.join(allowed)}"
                raise ConfigError(document.path, self.path_of(key), f"unknown key ({hint})", _line(key_node))
            self.entries[key] = (key_node, value_node)

    def path_of(self, key: str) -> str:
        return f"{self.key_path}.{key}" if self.key_path else key

    def line_of(self, key: str) -> int:
        """The key's line, or this mapping's line when the key is absent."""
        return _line(self.entries[key][0]) if key in self.entries else self.line

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(self.document.path, self.path_of(key), message, self.line_of(key))

    def node(self, key: str) -> yaml.Node | None:
        """The key's value node; None when the key is absent or null, which both mean "use the default"."""
        entry = self.entries.get(key)
        return None if entry is None or entry[1].tag == _NULL_TAG else entry[1]

    def get(self, key: str, convert: Callable[[Any], Any], default: Any = _REQUIRED) -> Any:
        """Return the converted value or the default; raise ConfigError if it is invalid or required and unset."""
        node = self.node(key)
        if node is None:
            if default is _REQUIRED:
                raise self.error(key, "required key is missing")
            return default
        return self.document.value(node, self.path_of(key), convert)

    def section(self, key: str, allowed: Iterable[str], required: bool = False) -> "_Mapping":
        """Return the nested mapping; an optional absent one reads as empty so that its defaults apply."""
        node = self.node(key)
        if node is None:
            if required:
                raise self.error(key, "required section is missing")
            node = yaml.MappingNode("tag:yaml.org,2002:map", [])
        return _Mapping(self.document, node, self.path_of(key), allowed, self.line_of(key))

    def items(self, key: str, default: list | None = None) -> list[tuple[yaml.Node, str]]:
        """Return (node, key path) per list entry.

        Raises ConfigError if the value is not a non-empty list, or is unset and there is no default.
        """
        node = self.node(key)
        if node is None:
            if default is None:
                raise self.error(key, "required key is missing")
            return default
        if not isinstance(node, yaml.SequenceNode):
            raise self.error(key, f"expected a list, got {_NODE_KINDS[type(node)]}")
        if not node.value:
            raise self.error(key, "must list at least one entry")
        return [(item, f"{self.path_of(key)}[{index}]") for index, item in enumerate(node.value)]

    def file(self, key: str) -> str | None:
        """Return the absolute path (relative ones start at the config's directory); raise ConfigError if unreadable."""
        name = self.get(key, _text, None)
        if name is None:
            return None
        path = os.path.normpath(os.path.join(self.document.directory, os.path.expanduser(name)))
        if not os.path.isfile(path) or not os.access(path, os.R_OK):
            raise self.error(key, f"cannot read file {path}")
        return path

    def secret_file(self, key: str) -> str | None:
        """Return the file's stripped content, warning if group or others may read it.

        Raises ConfigError if the file is unreadable, not UTF-8 or empty.
        """
        path = self.file(key)
        if path is None:
            return None
        try:
            with open(path, encoding="utf-8") as stream:
                content = stream.read().strip()
        except (OSError, UnicodeDecodeError) as problem:
            reason = getattr(problem, "strerror", None) or "not UTF-8 text"
            raise self.error(key, f"cannot read file {path}: {reason}") from None
        if not content:
            raise self.error(key, f"file {path} is empty")
        mode = os.stat(path).st_mode
        if mode & 0o044:
            self.document.warnings.append(
                str(self.error(key, f"{path} is readable by group or others (mode {mode & 0o777:04o}); chmod 600 it"))
            )
        return content


# --- the sections

_TOP_KEYS = ("site", "group", "key_prefix", "consul", "session", "services", "dns", "hooks", "election")
_CHECK_KINDS = ("http", "tcp", "script")


def load_config(path: str | os.PathLike) -> Config:
    """Load and validate the config file at `path`.

    Raises ConfigError, naming the file, the YAML line (when known) and the key path, for an
    unreadable, empty or malformed file, an unknown or missing key, or an invalid value.
    """
    document = _Document(os.fspath(path))
    top = _Mapping(document, document.compose(), "", _TOP_KEYS)
    site = top.get("site", _matching(_SITE_NAME, "a-z, 0-9 and -"))
    group = top.get("group", _matching(_SITE_NAME, "a-z, 0-9 and -"))
    key_prefix = top.get("key_prefix", _key_prefix, f"consulha/{group}")
    sections = dict(
        consul=_consul(top.section("consul", ("address", "token", "token_file", "ca_file", "cert_file", "key_file"))),
        session=_session(top.section("session", ("ttl", "lock_delay", "heartbeat_ttl"))),
        services=_services(top),
        dns=_dns(top.section("dns", _DNS_KEYS, required=True)),
        hooks=_hooks(top.section("hooks", ("on_promote", "on_demote", "timeout"))),
        election=_election(top.section("election", ("preferred_site", "failback_delay"))),
    )
    # Warnings are collected while the sections are read, so they are complete only now.
    return Config(
        path=document.path, site=site, group=group, key_prefix=key_prefix, warnings=tuple(document.warnings), **sections
    )


def _consul(consul: _Mapping) -> ConsulConfig:
    address = consul.get("address", _consul_address, ConsulConfig.address)
    if consul.node("token") is not None and consul.node("token_file") is not None:
        raise consul.error("token_file", "give either token or token_file, not both")
    token = (
        consul.get("token", _secret_text, None)
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


def _session(session: _Mapping) -> SessionConfig:
    ttl = session.get("ttl", _duration(10, 86400), SessionConfig.ttl)
    lock_delay = session.get("lock_delay", _lock_delay, SessionConfig.lock_delay)
    heartbeat_ttl = session.get("heartbeat_ttl", _duration(1, 86400), SessionConfig.heartbeat_ttl)
    if heartbeat_ttl > ttl:
        message = f"must not exceed session.ttl ({format_duration(ttl)}), got {format_duration(heartbeat_ttl)}"
        raise session.error("heartbeat_ttl", message)
    return SessionConfig(ttl=ttl, lock_delay=lock_delay, heartbeat_ttl=heartbeat_ttl)


def _services(top: _Mapping) -> tuple[ServiceConfig, ...]:
    services: list[ServiceConfig] = []
    first_line_of_name: dict[str, int] = {}
    for node, key_path in top.items("services"):
        service = _Mapping(top.document, node, key_path, ("name", "port", "check"))
        name = service.get("name", _matching(_SERVICE_NAME, "a-z, A-Z, 0-9, _ and -"))
        if name in first_line_of_name:
            message = f"duplicate service name {name!r} (first used on line {first_line_of_name[name]})"
            raise service.error("name", message)
        first_line_of_name[name] = service.line_of("name")
        port = service.get("port", _integer(1, 65535), None)
        check = _check(service.section("check", (*_CHECK_KINDS, "interval", "timeout"), required=True))
        services.append(ServiceConfig(name=name, check=check, port=port))
    return tuple(services)


def _check(check: _Mapping) -> CheckConfig:
    kinds = [kind for kind in _CHECK_KINDS if check.node(kind) is not None]
    if not kinds:
        raise ConfigError(check.document.path, check.key_path, f"needs one of {', '.join(_CHECK_KINDS)}", check.line)
    if len(kinds) > 1:
        raise ConfigError(
            check.document.path, check.key_path,
            f"give exactly one of {', '.join(_CHECK_KINDS)}, not {' and '.join(kinds)}", check.line_of(kinds[1]),
        )
    kind = kinds[0]
    target = check.get(kind, {"http": _url, "tcp": _tcp_target, "script": _text}[kind])
    interval = check.get("interval", _duration(0.1, 3600), 1.0)
    timeout = check.get("timeout", _duration(0, 3600), min(interval, 10.0))
    if timeout == 0:
        raise check.error("timeout", "must be greater than 0")
    return CheckConfig(kind=kind, target=target, interval=interval, timeout=timeout)


_DNS_KEYS = (
    "provider", "zone", "record", "type", "value", "ttl", "server", "verify", "tsig", "fencing", "reconcile_interval",
    "timeout",
)


def _dns(dns: _Mapping) -> DnsConfig:
    provider = dns.get("provider", _one_of("rfc2136"), "rfc2136")
    zone = dns.get("zone", _dns_name)
    record = dns.get("record", _dns_name)
    if record != zone and not record.endswith("." + zone):
        raise dns.error("record", f"{record} is not inside zone {zone}")
    record_type = dns.get("type", _record_type)
    if record_type == "CNAME" and record == zone:
        raise dns.error("record", "a CNAME cannot sit at the zone apex, next to the zone's SOA and NS records")
    server = dns.get("server", _host_port(53))
    verify = tuple(
        dns.document.value(node, key_path, _host_port(53)) for node, key_path in dns.items("verify", default=[])
    )
    return DnsConfig(
        provider=provider,
        zone=zone,
        record=record,
        type=record_type,
        value=dns.get("value", _record_value(record_type)),
        ttl=dns.get("ttl", _dns_ttl, 30),
        server=server,
        verify=verify or (server,),
        tsig=_tsig(dns) if dns.node("tsig") is not None else None,
        fencing=dns.get("fencing", _boolean, True),
        reconcile_interval=dns.get("reconcile_interval", _duration(1, 3600), 10.0),
        timeout=dns.get("timeout", _duration(0.1, 60), 2.0),
    )


def _tsig(dns: _Mapping) -> TsigConfig:
    tsig = dns.section("tsig", ("name", "algorithm", "secret", "secret_file"))
    name = tsig.get("name", _dns_name).removesuffix(".")
    algorithm = tsig.get("algorithm", _tsig_algorithm, "hmac-sha256")
    given = [key for key in ("secret", "secret_file") if tsig.node(key) is not None]
    if len(given) != 1:
        message = "give either secret or secret_file, not both" if given else "needs secret or secret_file"
        raise ConfigError(tsig.document.path, tsig.key_path, message, tsig.line_of(given[-1]) if given else tsig.line)
    if given == ["secret"]:
        return TsigConfig(name=name, algorithm=algorithm, secret=tsig.get("secret", _tsig_secret))
    try:
        secret = _tsig_secret(_secret_from_key_file(tsig.secret_file("secret_file"), name, algorithm))
    except ValueError as problem:
        raise tsig.error("secret_file", str(problem)) from None
    return TsigConfig(name=name, algorithm=algorithm, secret=secret)


def _hooks(hooks: _Mapping) -> HooksConfig:
    return HooksConfig(
        on_promote=hooks.get("on_promote", _text, None),
        on_demote=hooks.get("on_demote", _text, None),
        timeout=hooks.get("timeout", _duration(1, 3600), HooksConfig.timeout),
    )


def _election(election: _Mapping) -> ElectionConfig:
    preferred_site = election.get("preferred_site", _matching(_SITE_NAME, "a-z, 0-9 and -"), None)
    failback_delay = election.get("failback_delay", _duration(0, 86400), ElectionConfig.failback_delay)
    if preferred_site is None and election.node("failback_delay") is not None:
        warning = election.error("failback_delay", "has no effect without election.preferred_site")
        election.document.warnings.append(str(warning))
    return ElectionConfig(preferred_site=preferred_site, failback_delay=failback_delay)
