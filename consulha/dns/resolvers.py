"""Caching resolvers the operator runs: flush the managed names, ask what a client now gets.

After a switch a resolver keeps answering the old value until the record's TTL runs out. A
resolver the operator runs can be told to forget it: each kind below flushes one name with one
request, and `answer` asks the resolver as a client does (recursion desired), so the leader
knows when the path clients take has moved.

    unbound        its remote-control protocol on TCP (port 8953): one line `UBCT1 flush NAME`,
                   answered "ok"; TLS with the control key and certificates
                   (unbound-control-setup's files) or plain when the server sets
                   `control-use-cert: no`
    pdns_recursor  PowerDNS Recursor's HTTP API: PUT /api/v1/servers/localhost/cache/flush
                   ?domain=NAME with the X-API-Key header

Every failure is a ResolverError naming the resolver and what went wrong, never the key.
"""

from __future__ import annotations

import json
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request

import dns.exception
import dns.message
import dns.query
import dns.rcode

from consulha.config import ResolverConfig
from consulha.dns.wire import rdata_texts, where

UNBOUND_PREFIX = "UBCT1 "     # unbound's remote-control protocol, version 1
MAX_REPLY = 65536
_MODE_MISMATCH = ("the control port dropped the connection without an answer: does its control-use-cert "
                  "match {mode} (yes: TLS with control_key, control_cert, server_cert; no: plain)?")


class ResolverError(Exception):
    """A flush or a question to a resolver failed: unreachable, refused, not authorised."""


def flush(resolver: ResolverConfig, name: str, timeout: float) -> None:
    """Make `resolver` forget every cached answer for `name` (its common types)."""
    if resolver.kind == "unbound":
        _unbound(resolver, f"flush {name}", timeout)
    else:
        _recursor_flush(resolver, name, timeout)


def probe(resolver: ResolverConfig, timeout: float) -> str:
    """Reach the resolver's control channel with a read-only request (`validate --connect`):
    what it says about itself ("unbound 1.17.1", "PowerDNS Recursor 4.8.8"). Flushes nothing."""
    if resolver.kind == "unbound":
        reply = _unbound(resolver, "status", timeout)
        version = next((line.split(":", 1)[1].strip() for line in reply.splitlines()
                        if line.startswith("version:")), "?")
        return f"unbound {version}"
    body = _recursor(resolver, "GET", "/api/v1/servers/localhost", timeout)
    return f"PowerDNS Recursor {body.get('version', '?')}"


def answer(resolver: ResolverConfig, name: str, rdtype: str, timeout: float) -> tuple[str, ...]:
    """What a client asking `resolver` gets for `name` `rdtype` now: sorted rdata texts, ()
    for NXDOMAIN or NODATA. Raises ResolverError on a timeout, network error or error rcode."""
    host, port = resolver.address
    try:
        response, _ = dns.query.udp_with_fallback(dns.message.make_query(name, rdtype), host,
                                                  timeout=timeout, port=port)
    except dns.exception.Timeout:
        raise ResolverError(f"{resolver.name}: no answer from {where(resolver.address)} within {timeout:g}s") from None
    except (OSError, EOFError, dns.exception.DNSException) as error:
        raise ResolverError(f"{resolver.name}: asking {where(resolver.address)}: {error}") from None
    if response.rcode() == dns.rcode.NXDOMAIN:
        return ()
    if response.rcode() != dns.rcode.NOERROR:
        raise ResolverError(f"{resolver.name}: {where(resolver.address)} answered "
                            f"{dns.rcode.to_text(response.rcode())} for {name} {rdtype}")
    return rdata_texts(response, name, rdtype)


def _unbound(resolver: ResolverConfig, command: str, timeout: float) -> str:
    """Send one remote-control command, return unbound's reply ("ok" for a flush; "status"
    answers lines of "key: value")."""
    control = resolver.control
    try:
        with socket.create_connection(control, timeout=timeout) as plain:
            connection = _tls(resolver).wrap_socket(plain, server_hostname="unbound") if resolver.tls else plain
            with connection:
                connection.sendall(f"{UNBOUND_PREFIX}{command}\n".encode())
                reply = _read_all(connection)
    except ssl.SSLError as error:
        raise ResolverError(f"{resolver.name}: TLS with the control port failed ({error.reason or error}): "
                            "check control_key, control_cert and server_cert") from None
    except (ConnectionResetError, BrokenPipeError):
        # What unbound does to a TLS handshake on a plain control port, and the reverse.
        raise ResolverError(f"{resolver.name}: {_MODE_MISMATCH.format(mode='TLS' if resolver.tls else 'plain')}") \
            from None
    except (OSError, ValueError) as error:
        raise ResolverError(f"{resolver.name}: {error}") from None
    text = reply.decode(errors="replace").strip()
    if not text:
        raise ResolverError(f"{resolver.name}: {_MODE_MISMATCH.format(mode='TLS' if resolver.tls else 'plain')}")
    if text.startswith("error") or (command.startswith("flush") and text != "ok"):
        raise ResolverError(f"{resolver.name}: {command!r} answered {text.splitlines()[0][:200]!r}")
    return text


def _tls(resolver: ResolverConfig) -> ssl.SSLContext:
    """unbound-control's own TLS: our certificate and key, its self-signed certificate as the
    only authority; its certificate names "unbound", not the host."""
    tls = resolver.tls
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(tls.server_cert)
    context.load_cert_chain(tls.control_cert, tls.control_key)
    return context


def _read_all(connection: socket.socket) -> bytes:
    """Until the server closes (unbound's end of a reply)."""
    data = b""
    while len(data) < MAX_REPLY:
        chunk = connection.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def _recursor_flush(resolver: ResolverConfig, name: str, timeout: float) -> None:
    body = _recursor(resolver, "PUT", "/api/v1/servers/localhost/cache/flush?"
                     + urllib.parse.urlencode({"domain": name}), timeout)
    if "count" not in body:
        raise ResolverError(f"{resolver.name}: unexpected answer to a flush: {str(body)[:200]}")


def _recursor(resolver: ResolverConfig, method: str, path: str, timeout: float) -> dict:
    """One API request; its JSON answer."""
    request = urllib.request.Request(resolver.url.rstrip("/") + path, method=method,
                                     headers={"X-API-Key": resolver.api_key})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = json.loads(response.read(MAX_REPLY) or b"{}")
    except urllib.error.HTTPError as error:
        hint = ": check api_key" if error.code in (401, 403) else ""
        raise ResolverError(f"{resolver.name}: HTTP {error.code} {error.reason}{hint}") from None
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise ResolverError(f"{resolver.name}: {reason}") from None
    if not isinstance(body, dict):
        raise ResolverError(f"{resolver.name}: unexpected answer {str(body)[:200]}")
    return body
