"""A recording TCP proxy in front of a lab Consul: every HTTP request that reaches Consul through
it (method, path, query parameter names, JSON body fields) is kept for the API-surface check.

Why a proxy and not a hook in consulha's Consul adapter: the integration tests run the agent and
the CLI as child processes; a proxy sees their requests without any test code inside the
product. It forwards bytes unchanged in both directions (keep-alive, blocking queries and
timeouts behave as without it) and parses a copy of the client's byte stream.

It listens only while its Consul runs (ConsulDev starts and stops it with the server), so a dead
Consul still refuses connections and open connections are cut when Consul goes away.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

_CHUNK = 65536


@dataclass(frozen=True)
class ApiRequest:
    """One request as the surface check sees it: names only, never values."""
    method: str
    path: str                      # URL-decoded, without the query string
    query: tuple[str, ...]         # parameter names, sorted, unique
    body: tuple[str, ...] | None   # dotted JSON field paths; None: no body or not a JSON object
    user_agent: str

    def describe(self) -> str:
        query = f"?{'&'.join(self.query)}" if self.query else ""
        return f"{self.method} {self.path}{query}"


def body_fields(document: object, prefix: str = "") -> list[str]:
    """Dotted paths of every field of a JSON document: {"Check": {"HTTP": ..}} -> Check,
    Check.HTTP; list items as `Checks[].Name`."""
    fields: list[str] = []
    if isinstance(document, dict):
        for name, value in document.items():
            path = f"{prefix}{name}"
            fields.append(path)
            fields.extend(body_fields(value, path + "."))
    elif isinstance(document, list):
        for item in document:
            fields.extend(body_fields(item, prefix.removesuffix(".") + "[]."))
    return fields


def parse_request(head: bytes, body: bytes) -> ApiRequest:
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = (lines[0].split(" ", 2) + ["", ""])[:3]
    headers = {name.strip().lower(): value.strip()
               for name, _, value in (line.partition(":") for line in lines[1:] if line)}
    url = urlsplit(target)
    query = tuple(sorted({name for name, _ in parse_qsl(url.query, keep_blank_values=True)}))
    fields: tuple[str, ...] | None = None
    if body:
        try:
            document = json.loads(body)
        except ValueError:
            document = None
        if isinstance(document, dict):
            fields = tuple(dict.fromkeys(body_fields(document)))
    return ApiRequest(method, unquote(url.path), query, fields, headers.get("user-agent", ""))


class _RequestStream:
    """Splits the client's byte stream into requests (Content-Length bodies; the Consul clients
    here never send chunked requests, which are recorded with an unknown body)."""

    def __init__(self, record):
        self.buffer = b""
        self.record = record
        self.broken = False

    def feed(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end]
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip() or 0)
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4:end + 4 + length]
            self.buffer = self.buffer[end + 4 + length:]
            self.record(parse_request(head, body))

    def feed_safely(self, data: bytes) -> None:
        """feed(), but a stream it cannot parse is recorded as such and never breaks forwarding."""
        if self.broken:
            return
        try:
            self.feed(data)
        except (ValueError, UnicodeDecodeError) as error:
            self.broken = True
            self.record(ApiRequest("UNPARSED", f"({error})", (), None, ""))


class Recording:
    """Requests seen by every proxy of a test run, in arrival order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: list[ApiRequest] = []

    def add(self, request: ApiRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def drain(self) -> list[ApiRequest]:
        """The requests recorded since the last drain."""
        with self._lock:
            taken, self._requests = self._requests, []
        return taken


# Set by enable() (the test suite's conftest): every lab ConsulDev started afterwards serves its
# HTTP API through a RecordingProxy that adds to it.
RECORDING: Recording | None = None


def enable() -> Recording:
    global RECORDING
    RECORDING = RECORDING or Recording()
    return RECORDING


class RecordingProxy:
    """Listens on 127.0.0.1:`port` and forwards every connection to 127.0.0.1:`upstream_port`."""

    def __init__(self, port: int, upstream_port: int, recording: Recording):
        self.port = port
        self.upstream_port = upstream_port
        self._record = recording.add
        # Seconds each chunk from a client waits before it goes on to Consul: an emulated slow
        # link, for tests of what consulha says about round trips (validate --connect).
        self.delay = 0.0
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()

    def start(self) -> None:
        if self._listener is not None:
            return
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True,
                         name=f"apirecord-{self.port}").start()

    def stop(self) -> None:
        """Stop listening and cut every open connection (as a Consul that goes away does)."""
        listener, self._listener = self._listener, None
        if listener is not None:
            # shutdown() first: a listener only closed while its thread sat in accept() stayed
            # open, and took the next test's connections to a Consul that was gone (the next
            # test's client saw its connection dropped: test_takeover_of_a_frozen_leader, half
            # of 10 runs of its steps).
            _close(listener)
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            _close(sock)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by stop()
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
                upstream.settimeout(None)
            except OSError:
                _close(client)  # Consul not answering: the client sees its connection dropped
                continue
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._sockets.update((client, upstream))
            stream = _RequestStream(self._record)
            threading.Thread(target=self._pump, args=(client, upstream, stream.feed_safely), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, None), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, observe) -> None:
        try:
            while data := source.recv(_CHUNK):
                if observe is not None:
                    observe(data)
                    if self.delay:
                        time.sleep(self.delay)
                target.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._sockets.discard(source)
                self._sockets.discard(target)
            _close(source)
            _close(target)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
