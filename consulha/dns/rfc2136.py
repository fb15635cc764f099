"""RFC 2136 dynamic updates over TCP, TSIG-signed, fenced by RFC 2136 prerequisites.

All records of one zone move in ONE update whose prerequisite is the zone's fence TXT exactly as
read (or its absence): the server applies the whole update or nothing, so a client never sees
half a failover inside a zone, and a leader that lost a race never overwrites a newer one.
Zones are written one update each, in the configured order.
"""

from __future__ import annotations

import binascii

import dns.rcode
import dns.rdatatype
import dns.tsigkeyring
import dns.update

from consulha.config import DnsConfig
from consulha.dns.errors import DnsError, StaleEpochError
from consulha.dns.fence import check_site_name, fence_text, parse_epoch
from consulha.dns.protocol import DnsState, PublishResult
from consulha.dns.verify import Verifier
from consulha.dns.wire import canonical, check_rcode, read_rrset, send_tcp, where

PREREQUISITE_FAILED = {dns.rcode.NXDOMAIN, dns.rcode.YXDOMAIN, dns.rcode.NXRRSET, dns.rcode.YXRRSET}


class Rfc2136Provider:
    """Writes to cfg.server (the primary); reads from it over TCP, never from a cache."""

    def __init__(self, cfg: DnsConfig, site: str) -> None:
        """Raises ValueError for a site name that cannot go into the fence TXT, a TSIG secret
        that is not base64 or a value that is not valid for its type."""
        check_site_name(site)
        if cfg.server is None:
            raise ValueError("provider rfc2136 needs dns.server")
        self.cfg = cfg
        self.site = site
        self.server = cfg.server
        self.wanted = {(r.name, r.type): (canonical(r.type, r.value),) for r in cfg.records}
        self.verifier = Verifier(cfg, self.wanted, read_fences=True)
        self._keyring = None
        if cfg.tsig is not None:
            try:
                self._keyring = dns.tsigkeyring.from_text({cfg.tsig.name: cfg.tsig.secret})
            except (binascii.Error, ValueError):
                raise ValueError(f"TSIG secret of key {cfg.tsig.name!r} is not valid base64") from None

    def __repr__(self) -> str:
        # The keyring holds the secret: keep it out of reprs and logs.
        return f"Rfc2136Provider(records={len(self.cfg.records)}, server={where(self.server)!r}, site={self.site!r})"

    def answers(self) -> dict[str, tuple[str, ...] | str]:
        """Each verify server's answer for the first record (the site's address)."""
        return self.verifier.answers()

    def read_state(self) -> DnsState:
        """Read every record and every zone's fence from the primary.
        Raises DnsError on an error rcode, timeout or network error."""
        timeout = self.cfg.timeout
        values = {key: read_rrset(self.server, *key, timeout) for key in self.wanted}
        fence_txt = {fence: read_rrset(self.server, fence, "TXT", timeout) for fence in self._fences()}
        return DnsState(values=values, epochs={fence: parse_epoch(txt) for fence, txt in fence_txt.items()},
                        fence_txt=fence_txt)

    def publish(self, epoch: int) -> PublishResult:
        """Make every record hold its value, fenced at `epoch`: one update per zone that
        differs, in the configured zone order.

        Raises StaleEpochError (without writing anything) if any fence holds a newer epoch,
        also when a newer leader wins the race between our read and a zone's update.
        Raises DnsError if a zone's update lost against an equal or older writer (retry), or
        on an error rcode, TSIG error, timeout or network error; zones written before it stay
        written, and the next pass (level-triggered) writes the rest.
        """
        before = self.read_state()
        if self.cfg.fencing and before.epoch is not None and before.epoch > epoch:
            raise StaleEpochError(epoch, before.epoch, self._stale_where(before, epoch))
        written = tuple(zone for zone in self.cfg.zones if self._write_zone(zone, before, epoch))
        return PublishResult(changed=bool(written), before=before, epoch=epoch, written=written)

    def probe_auth(self) -> None:
        """Send, per zone, a signed update whose only content is a prerequisite that always
        holds (the zone has an SOA), so nothing changes. Raises DnsError if the server rejects
        it (NOTAUTH/BADKEY/BADSIG/REFUSED...). It proves the key, not BIND's update-policy
        grants, which BIND checks only for records actually being changed."""
        for zone in self.cfg.zones:
            update = self._new_update(zone)
            update.present(zone, dns.rdatatype.SOA)
            check_rcode(send_tcp(update, self.server, self.cfg.timeout, "auth probe"), self.server, "auth probe")

    def _fences(self) -> tuple[str, ...]:
        return tuple(self.cfg.fence_of(zone) for zone in self.cfg.zones) if self.cfg.fencing else ()

    def _write_zone(self, zone: str, before: DnsState, epoch: int) -> bool:
        """Send the zone's one update if it differs from what we want; True if sent."""
        records = self.cfg.records_in(zone)
        fence = self.cfg.fence_of(zone)
        values_match = all(before.values[r.name, r.type] == self.wanted[r.name, r.type] for r in records)
        if values_match and (not self.cfg.fencing or before.epochs[fence] == epoch):
            return False
        update = self._new_update(zone)
        if self.cfg.fencing:
            if before.fence_txt[fence]:
                # Value-dependent prerequisite: the whole TXT rrset must still be what we read.
                update.present(fence, dns.rdatatype.TXT, *before.fence_txt[fence])
            else:
                update.absent(fence, dns.rdatatype.TXT)
        for record in records:
            update.replace(record.name, self.cfg.ttl, record.type, *self.wanted[record.name, record.type])
        if self.cfg.fencing:
            update.replace(fence, self.cfg.ttl, dns.rdatatype.TXT, f'"{fence_text(epoch, self.site)}"')
        what = f"update of zone {zone}"
        response = send_tcp(update, self.server, self.cfg.timeout, what)
        if self.cfg.fencing and response.rcode() in PREREQUISITE_FAILED:
            now = read_rrset(self.server, fence, "TXT", self.cfg.timeout)
            stored = parse_epoch(now)
            if stored is not None and stored > epoch:
                raise StaleEpochError(epoch, stored, f"{fence} at {where(self.server)}")
            raise DnsError(
                f"lost a race writing zone {zone} at {where(self.server)}: "
                f"{dns.rcode.to_text(response.rcode())}, fence {fence} changed from {before.fence_txt[fence]} "
                f"to {now} after we read it; retry"
            )
        check_rcode(response, self.server, what)
        return True

    def _stale_where(self, state: DnsState, epoch: int) -> str:
        stale = [fence for fence, stored in state.epochs.items() if stored is not None and stored > epoch]
        return f"{', '.join(stale)} at {where(self.server)}"

    def _new_update(self, zone: str) -> dns.update.UpdateMessage:
        if self.cfg.tsig is None:
            return dns.update.UpdateMessage(zone)
        return dns.update.UpdateMessage(
            zone, keyring=self._keyring, keyname=self.cfg.tsig.name, keyalgorithm=self.cfg.tsig.algorithm
        )
