"""Point a DNS record at this site, fenced by the leadership epoch.

The record ``<record>`` holds this site's value; the TXT record
``_consulha.<record>`` holds ``"epoch=<n> site=<name>"`` of the leader that
wrote it. Every fenced write is a compare-and-set (RFC 2136 prerequisites on
the fence TXT), so a stale leader can never overwrite a newer one.
"""

from __future__ import annotations

import binascii
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import dns.update

if TYPE_CHECKING:
    from consulha.config import DnsConfig

EPOCH_PATTERN = re.compile(r"\bepoch=(\d+)\b")
SITE_PATTERN = re.compile(r"^[A-Za-z0-9._-]+$")
PREREQUISITE_FAILED = {dns.rcode.NXDOMAIN, dns.rcode.YXDOMAIN, dns.rcode.NXRRSET, dns.rcode.YXRRSET}
TSIG_ERROR_NAMES = {
    dns.tsig.PeerBadKey: "BADKEY",
    dns.tsig.PeerBadSignature: "BADSIG",
    dns.tsig.PeerBadTime: "BADTIME",
    dns.tsig.PeerBadTruncation: "BADTRUNC",
}


@dataclass(frozen=True)
class DnsState:
    """What the primary server holds now."""

    values: tuple[str, ...]  # the record's rdata as text, sorted; empty if absent
    epoch: int | None  # from the fence TXT; None if absent or unparseable
    fence_txt: tuple[str, ...]  # fence TXT rdata exactly as read, for the CAS prerequisite


@dataclass(frozen=True)
class PublishResult:
    changed: bool
    before: DnsState
    epoch: int


class DnsError(Exception):
    """A DNS read or update failed: rcode, TSIG error, timeout or network error.
    The message names the server and the reason, never the TSIG secret."""


class StaleEpochError(DnsError):
    """DNS already holds a newer epoch than ours: we must not write."""

    def __init__(self, ours: int, stored: int, record: str = "") -> None:
        super().__init__(f"stale epoch {ours}: {record or 'DNS'} is already fenced at epoch {stored}")
        self.ours = ours
        self.stored = stored


class DnsProvider(Protocol):
    def read_state(self) -> DnsState: ...

    def publish(self, value: str, epoch: int) -> PublishResult: ...

    def answers(self) -> dict[str, tuple[str, ...] | str]: ...

    def laggards(self, value: str) -> dict[str, tuple[str, ...] | str]: ...

    def probe_auth(self) -> None: ...


def make_provider(cfg: DnsConfig, site: str) -> DnsProvider:
    """The provider named by cfg.provider. Raises ValueError for an unknown one."""
    if cfg.provider == "rfc2136":
        return Rfc2136Provider(cfg, site)
    raise ValueError(f"unknown DNS provider {cfg.provider!r} (known: rfc2136)")


def parse_epoch(fence_txt: tuple[str, ...]) -> int | None:
    """The epoch written in the fence TXT rdata, or None. If several rdata
    carry one, the highest wins: fencing must err towards "stale"."""
    epochs = [int(m.group(1)) for txt in fence_txt for m in EPOCH_PATTERN.finditer(txt)]
    return max(epochs, default=None)


class Rfc2136Provider:
    """RFC 2136 dynamic updates over TCP, signed with TSIG when configured."""

    def __init__(self, cfg: DnsConfig, site: str) -> None:
        """Raises ValueError for a site name that cannot go into the fence TXT
        or a TSIG secret that is not base64."""
        if not SITE_PATTERN.match(site):
            raise ValueError(f"site name {site!r} must match {SITE_PATTERN.pattern}")
        self.cfg = cfg
        self.site = site
        self._zone = dns.name.from_text(cfg.zone)
        self._record = dns.name.from_text(cfg.record)
        self._fence = dns.name.from_text(cfg.fence_record)
        self._rdtype = dns.rdatatype.from_text(cfg.type)
        self._keyring = None
        if cfg.tsig is not None:
            try:
                self._keyring = dns.tsigkeyring.from_text({cfg.tsig.name: cfg.tsig.secret})
            except (binascii.Error, ValueError):
                raise ValueError(f"TSIG secret of key {cfg.tsig.name!r} is not valid base64") from None

    def __repr__(self) -> str:
        # The keyring holds the secret: keep it out of reprs and logs.
        return f"Rfc2136Provider(record={self.cfg.record!r}, server={_where(self.cfg.server)!r}, site={self.site!r})"

    def read_state(self) -> DnsState:
        """Read the record and its fence from cfg.server over TCP (no cache).
        Raises DnsError on an error rcode, timeout or network error."""
        values = self._read_rrset(self._record, self._rdtype)
        fence_txt = self._read_rrset(self._fence, dns.rdatatype.TXT)
        return DnsState(values=values, epoch=parse_epoch(fence_txt), fence_txt=fence_txt)

    def publish(self, value: str, epoch: int) -> PublishResult:
        """Make the record hold exactly `value`, fenced at `epoch`, in one update.

        Raises StaleEpochError (without writing) if DNS holds a newer epoch,
        also when a newer leader wins the race between our read and write.
        Raises DnsError if the CAS lost against an equal or older writer
        (retry), or on an error rcode, TSIG error, timeout or network error.
        """
        value = self._canonical(value)
        before = self.read_state()
        if not self.cfg.fencing:
            if before.values == (value,):
                return PublishResult(changed=False, before=before, epoch=epoch)
            update = self._new_update()
            update.replace(self._record, self.cfg.ttl, self._rdtype, value)
            self._check_rcode(self._send(update, "update"), "update")
            return PublishResult(changed=True, before=before, epoch=epoch)

        if before.epoch is not None and before.epoch > epoch:
            raise StaleEpochError(epoch, before.epoch, self.cfg.record)
        if before.epoch == epoch and before.values == (value,):
            return PublishResult(changed=False, before=before, epoch=epoch)

        update = self._new_update()
        if before.fence_txt:
            # Value-dependent prerequisite: the whole TXT rrset must still be what we read.
            update.present(self._fence, dns.rdatatype.TXT, *before.fence_txt)
        else:
            update.absent(self._fence, dns.rdatatype.TXT)
        update.replace(self._record, self.cfg.ttl, self._rdtype, value)
        update.replace(self._fence, self.cfg.ttl, dns.rdatatype.TXT, f'"epoch={epoch} site={self.site}"')
        response = self._send(update, "update")
        if response.rcode() in PREREQUISITE_FAILED:
            now = self.read_state()
            if now.epoch is not None and now.epoch > epoch:
                raise StaleEpochError(epoch, now.epoch, self.cfg.record)
            raise DnsError(
                f"lost a race updating {self.cfg.record} at {_where(self.cfg.server)}: "
                f"{dns.rcode.to_text(response.rcode())}, fence changed from {before.fence_txt} "
                f"to {now.fence_txt} after we read it; retry"
            )
        self._check_rcode(response, "update")
        return PublishResult(changed=True, before=before, epoch=epoch)

    def answers(self) -> dict[str, tuple[str, ...] | str]:
        """What each verify server answers for the record: "host:port" ->
        sorted rdata texts (empty if NXDOMAIN/NODATA), or an error string such
        as "timeout" or "REFUSED". Never raises for a server's failure."""
        servers = self.cfg.verify
        if not servers:
            return {}
        # In parallel, so one dead server costs one timeout, not one per server.
        with ThreadPoolExecutor(max_workers=len(servers)) as pool:
            results = pool.map(self._answer_from, servers)
            return {_where(server): result for server, result in zip(servers, results)}

    def laggards(self, value: str) -> dict[str, tuple[str, ...] | str]:
        """One round over the verify servers: those that do not answer exactly
        (value,), with what they answered (as in answers()). Empty when DNS has
        converged on `value`. Never raises for a server's failure."""
        expected = (self._canonical(value),)
        return {server: answer for server, answer in self.answers().items() if answer != expected}

    def probe_auth(self) -> None:
        """Send a signed update whose only content is a prerequisite that
        always holds (the zone has an SOA), so nothing changes. Raises
        DnsError if the server rejects it (NOTAUTH/BADKEY/BADSIG/REFUSED...).
        It proves the key, not the update-policy grants, which BIND checks
        only for records actually being changed."""
        update = self._new_update()
        update.present(self._zone, dns.rdatatype.SOA)
        self._check_rcode(self._send(update, "auth probe"), "auth probe")

    def _canonical(self, value: str) -> str:
        """The rdata text DNS will answer for `value` (e.g. CNAME gets its trailing dot)."""
        try:
            rdata = dns.rdata.from_text(dns.rdataclass.IN, self._rdtype, value, origin=dns.name.root, relativize=False)
        except dns.exception.SyntaxError as e:
            raise ValueError(f"{value!r} is not a valid {self.cfg.type} value: {e}") from None
        return rdata.to_text()

    def _new_update(self) -> dns.update.UpdateMessage:
        if self.cfg.tsig is None:
            return dns.update.UpdateMessage(self._zone)
        return dns.update.UpdateMessage(
            self._zone,
            keyring=self._keyring,
            keyname=self.cfg.tsig.name,
            keyalgorithm=self.cfg.tsig.algorithm,
        )

    def _read_rrset(self, name: dns.name.Name, rdtype: dns.rdatatype.RdataType) -> tuple[str, ...]:
        query = dns.message.make_query(name, rdtype)
        query.flags &= ~dns.flags.RD
        what = f"read of {name} {dns.rdatatype.to_text(rdtype)}"
        response = self._send(query, what)
        if response.rcode() == dns.rcode.NXDOMAIN:
            return ()
        self._check_rcode(response, what)
        return _rdata_texts(response, name, rdtype)

    def _send(self, message: dns.message.Message, what: str) -> dns.message.Message:
        """Send over TCP to cfg.server. Raises DnsError on TSIG errors, timeout
        and network errors; the caller checks the rcode."""
        host, port = self.cfg.server
        where = _where(self.cfg.server)
        try:
            return dns.query.tcp(message, host, timeout=self.cfg.timeout, port=port)
        except dns.tsig.PeerError as e:
            # The server rejected our signature; its rcode is NOTAUTH.
            raise DnsError(f"{what} at {where}: NOTAUTH ({TSIG_ERROR_NAMES.get(type(e), 'TSIG error')})") from e
        except dns.exception.Timeout as e:
            raise DnsError(f"{what} at {where}: timeout after {self.cfg.timeout}s") from e
        except (OSError, EOFError) as e:
            raise DnsError(f"{what} at {where}: network error: {e}") from e
        except dns.exception.DNSException as e:
            raise DnsError(f"{what} at {where}: bad response: {e}") from e

    def _check_rcode(self, response: dns.message.Message, what: str) -> None:
        """Raises DnsError unless the rcode is NOERROR."""
        if response.rcode() != dns.rcode.NOERROR:
            raise DnsError(f"{what} at {_where(self.cfg.server)}: {dns.rcode.to_text(response.rcode())}")

    def _answer_from(self, server: tuple[str, int]) -> tuple[str, ...] | str:
        host, port = server
        query = dns.message.make_query(self._record, self._rdtype)
        query.flags &= ~dns.flags.RD
        try:
            response, _ = dns.query.udp_with_fallback(query, host, timeout=self.cfg.timeout, port=port)
        except dns.exception.Timeout:
            return "timeout"
        except (OSError, EOFError, dns.exception.DNSException) as e:
            return f"error: {e}"
        if response.rcode() == dns.rcode.NXDOMAIN:
            return ()
        if response.rcode() != dns.rcode.NOERROR:
            return dns.rcode.to_text(response.rcode())
        return _rdata_texts(response, self._record, self._rdtype)


def _rdata_texts(response: dns.message.Message, name: dns.name.Name, rdtype: dns.rdatatype.RdataType) -> tuple[str, ...]:
    rrset = response.get_rrset(response.answer, name, dns.rdataclass.IN, rdtype)
    return tuple(sorted(rdata.to_text() for rdata in rrset)) if rrset else ()


def _where(server: tuple[str, int]) -> str:
    host, port = server
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def describe_laggards(laggards: dict[str, tuple[str, ...] | str]) -> str:
    """ "host:port answered X; ..." for a log line or an error message."""
    return "; ".join(f"{server} answered {_describe(answer)}" for server, answer in laggards.items())


def _describe(answer: tuple[str, ...] | str) -> str:
    if isinstance(answer, str):
        return answer
    return ", ".join(answer) if answer else "nothing"
