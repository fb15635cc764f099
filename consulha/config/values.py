"""Value converters: take a constructed YAML value, return the config value or raise ValueError.

Messages may quote the value, except in the converters used for secrets.
"""

import base64
import binascii
import ipaddress
import re
from typing import Any, Callable
from urllib.parse import urlsplit

from consulha.config.model import MIN_LOCK_DELAY, TSIG_ALGORITHMS
from consulha.core.durations import format_duration, parse_duration

SITE_NAME = re.compile(r"[a-z0-9-]+")
SERVICE_NAME = re.compile(r"[a-zA-Z0-9_-]+")
_DNS_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")
_YAML_TYPE_NAMES = {bool: "a boolean", int: "an integer", float: "a number", list: "a list", dict: "a mapping"}


def as_text(value: Any) -> str:
    if not isinstance(value, str):
        kind = _YAML_TYPE_NAMES.get(type(value), type(value).__name__)
        raise ValueError(f"expected a string, got {kind} (quote it if you meant text)")
    if not value.strip():
        raise ValueError("must not be empty")
    return value.strip()


def matching(pattern: re.Pattern, what: str) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        text = as_text(value)
        if not pattern.fullmatch(text):
            raise ValueError(f"{text!r} is not a valid name: use only {what}")
        return text
    return convert


def one_of(*choices: str) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        text = as_text(value)
        if text not in choices:
            raise ValueError(f"{text!r} is not one of {', '.join(choices)}")
        return text
    return convert


def integer(low: int, high: int) -> Callable[[Any], int]:
    def convert(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected an integer, got {value!r}")
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}, got {value}")
        return value
    return convert


def number(low: float, high: float) -> Callable[[Any], float]:
    def convert(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"expected a number, got {value!r}")
        if not low <= value <= high:
            raise ValueError(f"must be between {low:g} and {high:g}, got {value:g}")
        return float(value)
    return convert


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def duration(low: float, high: float) -> Callable[[Any], float]:
    def convert(value: Any) -> float:
        seconds = parse_duration(value)
        if not low <= seconds <= high:
            raise ValueError(
                f"must be between {format_duration(low)} and {format_duration(high)}, got {format_duration(seconds)}"
            )
        return seconds
    return convert


def lock_delay(value: Any) -> float:
    seconds = duration(0, 60)(value)
    if seconds < MIN_LOCK_DELAY:
        raise ValueError(
            f"{format_duration(seconds)} is too short, use at least {format_duration(MIN_LOCK_DELAY)}: lock_delay "
            "is the only grace a leader has to notice that Consul invalidated its session before another site "
            "can take the lock (it fences itself after min(ttl, lock_delay) minus a safety margin)"
        )
    return seconds


def dns_ttl(value: Any) -> int:
    seconds = value if isinstance(value, int) and not isinstance(value, bool) else parse_duration(value)
    if seconds != int(seconds):
        raise ValueError(f"must be whole seconds, got {format_duration(seconds)}")
    return integer(1, 86400)(int(seconds))


def key_prefix(value: Any) -> str:
    text = as_text(value)
    if text.startswith("/") or text.endswith("/") or "//" in text or any(char.isspace() for char in text):
        raise ValueError(f"{text!r} must be a Consul KV path without leading/trailing slash, empty parts or spaces")
    return text


def tcp_target(value: Any) -> str:
    host_port(default_port=None)(value)
    return as_text(value)


def record_type(value: Any) -> str:
    return one_of("A", "AAAA", "CNAME")(as_text(value).upper())


def url(value: Any) -> str:
    text = as_text(value)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{text!r} is not an http:// or https:// URL with a host")
    parts.port  # raises ValueError for a non-numeric or out-of-range port
    return text


def consul_address(value: Any) -> str:
    address = url(value).rstrip("/")
    parts = urlsplit(address)
    if parts.path or parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"{address!r} must be scheme://host[:port] only, e.g. http://127.0.0.1:8500")
    return address


def _is_hostname(text: str) -> bool:
    labels = text.removesuffix(".").split(".")
    # An all-digit last label is a mistyped IPv4 address such as 192.0.2.300, not a name.
    return len(text) <= 253 and all(_DNS_LABEL.fullmatch(label) for label in labels) and not labels[-1].isdigit()


def dns_name(value: Any) -> str:
    """Return the name lowercased and absolute (with its trailing dot)."""
    text = as_text(value).lower()
    if not _is_hostname(text):
        raise ValueError(f"{text!r} is not a valid DNS name")
    return text if text.endswith(".") else text + "."


def host_port(default_port: int | None) -> Callable[[Any], tuple[str, int]]:
    """Read "host:port", "[v6]:port", or (with a default port) "host" / a bare IPv6 address."""
    def convert(value: Any) -> tuple[str, int]:
        text = as_text(value)
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


def ip_address(value: Any) -> str:
    text = as_text(value)
    if not _is_ip(text):
        raise ValueError(f"{text!r} is not an IP address")
    return text


def _is_ip(text: str, version: int | None = None) -> bool:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    return version is None or address.version == version


def record_value(record_type: str) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        text = as_text(value)
        if record_type == "CNAME":
            return dns_name(text)
        address_class = ipaddress.IPv4Address if record_type == "A" else ipaddress.IPv6Address
        try:
            return str(address_class(text))
        except ValueError:
            version = 4 if record_type == "A" else 6
            raise ValueError(f"{text!r} is not an IPv{version} address, as type {record_type} needs") from None
    return convert


def tsig_algorithm(value: Any) -> str:
    algorithm = as_text(value).lower().removesuffix(".")
    if algorithm == "hmac-md5":
        raise ValueError(
            "hmac-md5 is refused: MD5 is broken and RFC 8945 says not to use it for TSIG; use hmac-sha256 "
            "(generate a key with `tsig-keygen -a hmac-sha256`)"
        )
    return one_of(*TSIG_ALGORITHMS)(algorithm)


def secret_text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("expected a non-empty string")
    return value.strip()


def tsig_secret(value: Any) -> str:
    secret = secret_text(value)
    try:
        base64.b64decode(secret, validate=True)
    except binascii.Error:
        raise ValueError("is not valid base64 (as printed by tsig-keygen)") from None
    return secret


_BIND_KEY_CLAUSE = re.compile(r'key\s+"?([^"\s{]+)"?\s*\{(.*?)\}\s*;', re.S)
_BIND_KEY_STATEMENT = re.compile(r'(algorithm|secret)\s+"?([^";\s]+)"?\s*;')


def secret_from_key_file(content: str, key_name: str, algorithm: str) -> str:
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
