"""What the suite reads, from the observer namespace (call through NetLab.observe): Consul's
HTTP API, the leader key, the authoritative DNS answer; the Sampler records them as a timeline."""

from __future__ import annotations

import base64
import http.client
import json
import re
import threading
import time
from pathlib import Path
from typing import Callable

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode

from lab.invariants import Sample
from lab.netns import LEADER_KEY, RECORD, SERVERS, NetLab, enter_netns
from lab.pair import wait_until


def http_json(address: str, path: str, timeout: float = 0.5, method: str = "GET",
              body: bytes | None = None) -> tuple[int, object]:
    """(status, decoded JSON or None); status 0 when unreachable."""
    connection = http.client.HTTPConnection(address, 8500, timeout=timeout)
    try:
        connection.request(method, path, body=body)
        reply = connection.getresponse()
        data = reply.read()
        try:
            decoded = json.loads(data) if data else None
        except ValueError:
            decoded = data.decode(errors="replace")
        return reply.status, decoded
    except (OSError, http.client.HTTPException):
        return 0, None
    finally:
        connection.close()


def read_leader_key(addresses: list[str], timeout: float = 0.4) -> tuple[bool, dict | None, dict | None]:
    """(ok, raw entry or None, decoded value or None) from the first server that answers a
    consistent read; `addresses` is reordered so the last good one goes first next time."""
    for address in list(addresses):
        status, body = http_json(address, f"/v1/kv/{LEADER_KEY}?consistent", timeout)
        if status == 404:
            return True, None, None
        if status == 200 and isinstance(body, list) and body:
            entry = body[0]
            try:
                value = json.loads(base64.b64decode(entry.get("Value") or ""))
            except ValueError:
                value = None
            if addresses[0] != address:
                addresses.remove(address)
                addresses.insert(0, address)
            return True, entry, value if isinstance(value, dict) else None
    return False, None, None


def read_dns(server: str, timeout: float = 0.25) -> tuple[bool, tuple[str, ...], tuple[str, ...]]:
    """(ok, A values, fence TXT strings) as the authoritative server answers now.

    The record and its fence are two queries: an update landing between them would give a torn
    state, so the record is read again after the fence and the read retried (at most 3 times)
    until both record reads agree."""

    def one(name: str, rdtype: str) -> tuple[str, ...] | None:
        query = dns.message.make_query(name, rdtype)
        query.flags &= ~dns.flags.RD
        reply = dns.query.udp(query, server, port=53, timeout=timeout)
        if reply.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            return None
        texts = [b"".join(rr.strings).decode() if rdtype == "TXT" else rr.to_text()
                 for rrset in reply.answer for rr in rrset]
        return tuple(sorted(texts))

    try:
        for _ in range(3):
            values = one(RECORD, "A")
            fence = one("_consulha." + RECORD, "TXT")
            again = one(RECORD, "A")
            if values is None or fence is None or again is None:
                return False, (), ()
            if values == again:
                return True, values, fence
        return False, (), ()
    except (dns.exception.DNSException, OSError):
        return False, (), ()


_FENCE = re.compile(r"epoch=(\d+)\s+site=(\S+)")


def make_sample(t: float, key: tuple[bool, dict | None, dict | None],
                dns_state: tuple[bool, tuple[str, ...], tuple[str, ...]]) -> Sample:
    key_ok, entry, value = key
    holder_site = holder_epoch = holder_session = None
    if key_ok and entry and entry.get("Session") and value:
        holder_site, holder_epoch, holder_session = value.get("site"), value.get("epoch"), entry["Session"]
    dns_ok, values, fence = dns_state
    fence_epoch = fence_site = None
    for text in fence:
        match = _FENCE.search(text)
        if match and (fence_epoch is None or int(match.group(1)) > fence_epoch):
            fence_epoch, fence_site = int(match.group(1)), match.group(2)
    return Sample(t=t, dns_ok=dns_ok, dns_values=values, fence_epoch=fence_epoch,
                  fence_site=fence_site, key_ok=key_ok, holder_site=holder_site,
                  holder_epoch=holder_epoch, holder_session=holder_session)


class Sampler:
    """Polls the leader key and the authoritative DNS answer + fence every `period` from the
    observer namespace, for at most `max_duration` seconds (bounded), appending JSON lines."""

    def __init__(self, lab: NetLab, path: Path, period: float = 0.05, max_duration: float = 240.0):
        self.lab = lab
        self.path = path
        self.period = period
        self.max_duration = max_duration
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._servers = [lab.addr(s) for s in SERVERS]

    def start(self) -> "Sampler":
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        enter_netns(self.lab.ns("obs"))
        started = time.monotonic()
        dns_server = self.lab.addr("dns")
        with open(self.path, "a") as out:
            while not self._stop.is_set() and time.monotonic() - started < self.max_duration:
                t = time.monotonic()
                sample = make_sample(t, read_leader_key(self._servers), read_dns(dns_server))
                self.samples.append(sample)
                out.write(sample.to_json() + "\n")
                self._stop.wait(max(0.0, t + self.period - time.monotonic()))

    def stop(self) -> list[Sample]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        return list(self.samples)

    def latest(self) -> Sample | None:
        return self.samples[-1] if self.samples else None

    def wait(self, predicate: Callable[[Sample], bool], timeout: float, what: str,
             logs: Callable[[], str] | None = None) -> Sample:
        """Wait until a sample taken from now on satisfies `predicate`; returns it
        (AssertionError naming `what`, with `logs()`, after `timeout`)."""
        start = len(self.samples)

        def found():
            for sample in self.samples[start:]:
                if predicate(sample):
                    return sample
            return None
        return wait_until(found, timeout, step=0.05, what=what, logs=logs)  # type: ignore[return-value]
