"""The one way this package opens an HTTP listener (metrics, heartbeat): IPv4 or IPv6 by the
address's form."""

from __future__ import annotations

import socket
from http.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer


def http_server(listen: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                threaded: bool = True, backlog: int = 5) -> HTTPServer:
    """A bound server. `threaded`: a thread per request (daemon threads); else requests are
    answered one at a time in the serving thread. Raises OSError if it cannot bind."""
    base = ThreadingHTTPServer if threaded else HTTPServer
    server_class = type("ConsulhaHTTPServer", (base,), {
        "address_family": socket.AF_INET6 if ":" in listen[0] else socket.AF_INET,
        "daemon_threads": True, "request_queue_size": backlog})
    return server_class(listen, handler)
