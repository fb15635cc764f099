"""DNS messages on the wire (dnspython): send, read an rrset, turn failures into DnsError.

dnspython raises on timeouts and TSIG errors, but REFUSED, NOTAUTH and SERVFAIL arrive as a normal
reply: every caller here checks the rcode.
"""

from __future__ import annotations

import socket
import struct

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

from consulha.dns.errors import DnsError

Server = tuple[str, int]

TSIG_ERROR_NAMES = {
    dns.tsig.PeerBadKey: "BADKEY",
    dns.tsig.PeerBadSignature: "BADSIG",
    dns.tsig.PeerBadTime: "BADTIME",
    dns.tsig.PeerBadTruncation: "BADTRUNC",
}


def where(server: Server) -> str:
    """ "host:port", with brackets around an IPv6 host."""
    host, port = server
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def canonical(rdtype: str, value: str) -> str:
    """The rdata text DNS will answer for `value` (e.g. a CNAME target gets its trailing dot).
    Raises ValueError for a value that is not valid for the type."""
    try:
        rdata = dns.rdata.from_text(dns.rdataclass.IN, rdtype, value, origin=dns.name.root, relativize=False)
    except dns.exception.SyntaxError as e:
        raise ValueError(f"{value!r} is not a valid {rdtype} value: {e}") from None
    return rdata.to_text()


def send_tcp(message: dns.message.Message, server: Server, timeout: float, what: str) -> dns.message.Message:
    """Send over TCP (each network step bounded by `timeout`). Raises DnsError on TSIG errors,
    timeout and network errors; the caller checks the rcode. A signed request must get a signed
    reply: BIND signs its TSIG errors (BADSIG, BADKEY), PowerDNS answers them unsigned, and both
    end as an error naming the rcode."""
    host, port = server
    try:
        with socket.create_connection((host, port), timeout=timeout) as connection:
            wire = message.to_wire()
            connection.sendall(struct.pack("!H", len(wire)) + wire)
            (length,) = struct.unpack("!H", _read_exactly(connection, 2))
            reply = _read_exactly(connection, length)
    except socket.timeout as e:
        raise DnsError(f"{what} at {where(server)}: timeout after {timeout}s") from e
    except (OSError, EOFError) as e:
        raise DnsError(f"{what} at {where(server)}: network error: {e}") from e
    try:
        response = dns.message.from_wire(reply, keyring=message.keyring, request_mac=message.mac)
    except dns.tsig.PeerError as e:
        # The server rejected our signature; its rcode is NOTAUTH.
        raise DnsError(f"{what} at {where(server)}: NOTAUTH ({TSIG_ERROR_NAMES.get(type(e), 'TSIG error')})") from e
    except dns.exception.FormError as e:
        if not message.had_tsig:
            raise DnsError(f"{what} at {where(server)}: bad response: {e}") from e
        # Read without checking the (absent) signature only to name the rcode; never a success.
        rcode = dns.rcode.to_text(dns.message.from_wire(reply, keyring=False).rcode())
        raise DnsError(f"{what} at {where(server)}: {rcode} (unsigned reply: the server rejected our TSIG key "
                       "or signature)") from e
    except dns.exception.DNSException as e:
        raise DnsError(f"{what} at {where(server)}: bad response: {e}") from e
    if not message.is_response(response):
        raise DnsError(f"{what} at {where(server)}: bad response: it does not answer our request")
    return response


def _read_exactly(connection: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            raise EOFError("the server closed the connection")
        data += chunk
    return data


def check_rcode(response: dns.message.Message, server: Server, what: str) -> None:
    """Raises DnsError naming the server and the rcode unless it is NOERROR."""
    if response.rcode() != dns.rcode.NOERROR:
        raise DnsError(f"{what} at {where(server)}: {dns.rcode.to_text(response.rcode())}")


def non_recursive_query(name: str, rdtype: str) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    query.flags &= ~dns.flags.RD  # ask the authoritative data, never a recursion
    return query


def read_rrset(server: Server, name: str, rdtype: str, timeout: float) -> tuple[str, ...]:
    """The rrset's rdata texts, sorted, from `server` over TCP (no cache on the way); () for
    NXDOMAIN or NODATA. Raises DnsError on an error rcode, timeout or network error."""
    what = f"read of {name} {rdtype}"
    response = send_tcp(non_recursive_query(name, rdtype), server, timeout, what)
    if response.rcode() == dns.rcode.NXDOMAIN:
        return ()
    check_rcode(response, server, what)
    return rdata_texts(response, name, rdtype)


def ask(server: Server, name: str, rdtype: str, timeout: float) -> tuple[str, ...] | str:
    """What `server` answers, as a client would ask it (UDP, TCP if truncated): sorted rdata
    texts, () for NXDOMAIN/NODATA, or an error string ("timeout", "REFUSED", "error: ...")."""
    host, port = server
    try:
        response, _ = dns.query.udp_with_fallback(non_recursive_query(name, rdtype), host, timeout=timeout,
                                                  port=port)
    except dns.exception.Timeout:
        return "timeout"
    except (OSError, EOFError, dns.exception.DNSException) as e:
        return f"error: {e}"
    if response.rcode() == dns.rcode.NXDOMAIN:
        return ()
    if response.rcode() != dns.rcode.NOERROR:
        return dns.rcode.to_text(response.rcode())
    return rdata_texts(response, name, rdtype)


def rdata_texts(response: dns.message.Message, name: str, rdtype: str) -> tuple[str, ...]:
    rrset = response.get_rrset(response.answer, dns.name.from_text(name), dns.rdataclass.IN,
                               dns.rdatatype.from_text(rdtype))
    return tuple(sorted(rdata.to_text() for rdata in rrset)) if rrset else ()
