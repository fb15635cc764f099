"""The agent's heartbeat: an HTTP check that the local Consul agent runs against us.

Consul asks, we answer, so the heartbeat costs the agent no request to Consul. (A TTL check that
the agent refreshes costs one request per second per group: more than everything else a standby
sends.) Each group's heartbeat check fetches
`http://<listen>/heartbeat/<check id>`:

    200  the group's main loop made a pass within its stall limit
    503  the loop stalled: Consul turns the check critical, exactly as if the process had died
    404  no such group here (abandoned after a crash, or another process on a reused port)

A dead process refuses the connection and a frozen one (SIGSTOP, swapped out) times out, so
Consul turns the check critical after three probes in a row that failed: a dead agent within
`heartbeat_ttl`, a frozen one within about twice that (see `consulha.consul.registration.heartbeat_check`). One server
serves every group of a process, answering in its own thread: no thread is started per probe,
which under a burst of many groups' failovers could not get the interpreter in time.
"""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Callable

from consulha.ops.httpserver import http_server

log = logging.getLogger("consulha.heartbeat")

PATH = "/heartbeat/"
def bind_problem(address: str) -> str | None:
    """Why this host cannot answer heartbeat probes on `address`, or None."""
    try:
        http_server((address, 0), BaseHTTPRequestHandler).server_close()
        return None
    except OSError as error:
        return f"cannot listen on {address}: {error.strerror or error}"


class HeartbeatServer:
    """One small HTTP server per process; each group vouches for itself under its check id."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self._vouchers: dict[str, Callable[[], bool]] = {}
        self._lock = threading.Lock()
        self._host, self._port = host, port
        self._server: HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Bind and serve; idempotent. Raises OSError if the address cannot be bound."""
        with self._lock:
            if self._server is not None:
                return
            # One probe at a time, answered in the server's thread; a backlog for every
            # group's probe arriving at once.
            self._server = http_server((self._host, self._port), self._handler(), threaded=False,
                                       backlog=128)
            self._thread = threading.Thread(target=self._server.serve_forever, name="heartbeat",
                                            kwargs={"poll_interval": 0.5}, daemon=True)
            self._thread.start()
        log.info("heartbeat endpoint on %s", self.url(""))

    def stop(self) -> None:
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def url(self, check_id: str) -> str:
        if self._server is None:
            raise RuntimeError("heartbeat server not started")
        host, port = self._server.server_address[:2]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}{PATH}{check_id}"

    def vouch(self, check_id: str, is_alive: Callable[[], bool]) -> None:
        """Answer for `check_id` from now on: 200 while `is_alive()`, else 503."""
        with self._lock:
            self._vouchers[check_id] = is_alive

    def withdraw(self, check_id: str) -> None:
        """Stop answering for `check_id` (404): its check turns critical on the next probes."""
        with self._lock:
            self._vouchers.pop(check_id, None)

    def answer(self, path: str) -> tuple[int, str]:
        """(HTTP status, body) for a probe of `path`."""
        if not path.startswith(PATH):
            return 404, "not a heartbeat path"
        with self._lock:
            is_alive = self._vouchers.get(path[len(PATH):])
        if is_alive is None:
            return 404, "no such group in this consulha process"
        if is_alive():
            return 200, "consulha agent alive"
        return 503, "consulha main loop stalled"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        answer = self.answer

        class Probe(BaseHTTPRequestHandler):
            timeout = 2.0  # a client that connects and sends nothing must not hold the others

            def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches to
                status, body = answer(self.path)
                payload = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args) -> None:  # noqa: A002 - base signature
                pass  # one probe per group per second: not worth a log line each

        return Probe
