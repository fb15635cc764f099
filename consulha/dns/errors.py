"""The errors every DNS provider raises."""

from __future__ import annotations


class DnsError(Exception):
    """A DNS read or update failed: rcode, TSIG error, timeout, network or command error.
    The message names the server (or command) and the reason, never a secret."""


class StaleEpochError(DnsError):
    """DNS already holds a newer epoch than ours: we must not write."""

    def __init__(self, ours: int, stored: int, where: str = "") -> None:
        super().__init__(f"stale epoch {ours}: {where or 'DNS'} is already fenced at epoch {stored}")
        self.ours = ours
        self.stored = stored
