"""`dns.resolvers`: the caching resolvers the leader flushes after a switch.

    dns:
      resolvers:
        - unbound: 127.0.0.1:8953            # its remote-control port; plain (control-use-cert: no)
        - unbound: 10.0.0.5:8953
          address: 10.0.0.5:53               # where it answers DNS (default: the control host, 53)
          control_key: /etc/unbound/unbound_control.key    # TLS: all three, as
          control_cert: /etc/unbound/unbound_control.pem   # unbound-control-setup writes them
          server_cert: /etc/unbound/unbound_server.pem
        - pdns_recursor: http://127.0.0.1:8082   # its web server (webserver=yes, api-key)
          api_key_file: /etc/consulha/recursor-api-key   # or api_key: (inline)
          address: 127.0.0.1:53
"""

from __future__ import annotations

from urllib.parse import urlsplit

from consulha.config import values
from consulha.config.model import ConfigError, ResolverConfig, UnboundTls
from consulha.config.yamlnodes import Mapping

KINDS = ("unbound", "pdns_recursor")
TLS_KEYS = ("control_key", "control_cert", "server_cert")
_KEYS_OF = {"unbound": ("address", *TLS_KEYS), "pdns_recursor": ("address", "api_key", "api_key_file")}
_ALL_KEYS = (*KINDS, *{key for keys in _KEYS_OF.values() for key in keys})


def resolvers(dns: Mapping) -> tuple[ResolverConfig, ...]:
    found: list[ResolverConfig] = []
    first_line: dict[str, int] = {}
    for node, key_path in dns.items("resolvers", default=[]):
        entry = Mapping(dns.document, node, key_path, _ALL_KEYS)
        resolver = _resolver(entry)
        if resolver.name in first_line:
            raise entry.error(resolver.kind, f"{resolver.name} is listed twice (first on line "
                                             f"{first_line[resolver.name]})")
        first_line[resolver.name] = entry.line_of(resolver.kind)
        found.append(resolver)
    return tuple(found)


def _resolver(entry: Mapping) -> ResolverConfig:
    kinds = [kind for kind in KINDS if entry.node(kind) is not None]
    if len(kinds) != 1:
        problem = f"names {' and '.join(kinds)}: one kind per entry" if kinds else \
            f"needs one of {', '.join(KINDS)} (the resolver's kind, with its control address)"
        raise ConfigError(entry.document.path, entry.key_path, problem,
                          entry.line_of(kinds[-1]) if kinds else entry.line)
    kind = kinds[0]
    for key in entry.entries:
        if key not in (kind, *_KEYS_OF[kind]):
            raise entry.error(key, f"is not a key of a {kind} resolver (its keys: {', '.join(_KEYS_OF[kind])})")
    if kind == "unbound":
        control = entry.get("unbound", values.host_port(8953))
        return ResolverConfig(kind=kind, control=control, tls=_tls(entry),
                              address=entry.get("address", values.host_port(53), (control[0], 53)))
    url = entry.get("pdns_recursor", values.url)
    return ResolverConfig(kind=kind, url=url, api_key=_api_key(entry),
                          address=entry.get("address", values.host_port(53), (_host_of(url), 53)))


def _tls(entry: Mapping) -> UnboundTls | None:
    given = [key for key in TLS_KEYS if entry.node(key) is not None]
    if not given:
        return None
    missing = [key for key in TLS_KEYS if key not in given]
    if missing:
        raise entry.error(given[0], f"TLS to unbound's control port needs {', '.join(TLS_KEYS)}; "
                                    f"missing: {', '.join(missing)} (or give none of them for "
                                    "control-use-cert: no)")
    return UnboundTls(*(entry.file(key) for key in TLS_KEYS))


def _api_key(entry: Mapping) -> str:
    given = [key for key in ("api_key", "api_key_file") if entry.node(key) is not None]
    if len(given) != 1:
        message = "give either api_key or api_key_file, not both" if given else \
            "needs api_key or api_key_file (the recursor's api-key)"
        raise ConfigError(entry.document.path, entry.path_of(given[-1]) if given else entry.key_path,
                          message, entry.line_of(given[-1]) if given else entry.line)
    if given == ["api_key"]:
        return entry.get("api_key", values.secret_text)
    return entry.secret_file("api_key_file")


def _host_of(url: str) -> str:
    return urlsplit(url).hostname or "127.0.0.1"
