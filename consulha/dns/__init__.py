"""Point DNS at this site, fenced by the leadership epoch.

    protocol.py  DnsProvider, DnsState, PublishResult: what a provider offers the publisher
    errors.py    DnsError, StaleEpochError
    fence.py     the fence TXT's format (epoch and site)
    wire.py      DNS messages on the wire (send, read, errors with server and rcode)
    rfc2136.py   RFC 2136 dynamic updates: one update per zone, the fence as prerequisite
    command.py   an external command implements read/publish (e.g. an in-house DNS API)
    verify.py    what every verify server (primary and secondaries) answers
"""

from __future__ import annotations

from consulha.config import DnsConfig
from consulha.dns.command import EXIT_STALE, CommandProvider
from consulha.dns.errors import DnsError, StaleEpochError
from consulha.dns.fence import parse_epoch
from consulha.dns.protocol import DnsProvider, DnsState, PublishResult
from consulha.dns.rfc2136 import Rfc2136Provider
from consulha.dns.verify import ServerView, Verifier, describe_laggards

__all__ = ["EXIT_STALE", "CommandProvider", "DnsError", "DnsProvider", "DnsState", "PublishResult",
           "Rfc2136Provider", "ServerView", "StaleEpochError", "Verifier", "describe_laggards", "make_provider",
           "parse_epoch"]

PROVIDERS = {"rfc2136": Rfc2136Provider, "command": CommandProvider}


def make_provider(cfg: DnsConfig, site: str) -> Rfc2136Provider | CommandProvider:
    """The provider named by cfg.provider. Raises ValueError for an unknown one."""
    if cfg.provider not in PROVIDERS:
        raise ValueError(f"unknown DNS provider {cfg.provider!r} (known: {', '.join(PROVIDERS)})")
    return PROVIDERS[cfg.provider](cfg, site)
