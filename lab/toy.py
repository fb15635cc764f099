"""A toy service for the demo, tests and benchmarks: an HTTP health endpoint you can break."""

from __future__ import annotations

import http.server
import threading


class _Server(http.server.ThreadingHTTPServer):
    # socketserver's default listen backlog is 5. One toy behind 40 groups' checks (80 probes a
    # second in bench/scale.py) overflowed it on a loaded machine: a dropped SYN is retried after
    # 1 s, the check's timeout, so healthy services went critical and groups failed over.
    request_queue_size = 128
    daemon_threads = True


class ToyService:
    """Serves GET /health on 127.0.0.1: 200 while `healthy`, 503 after `fail()`."""

    def __init__(self, name: str = "toy"):
        self.name = name
        self.healthy = True
        toy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                code = 200 if toy.healthy else 503
                body = f"{toy.name} {'ok' if toy.healthy else 'failing'}\n".encode()
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self._server = _Server(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/health"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> "ToyService":
        self._thread.start()
        return self

    def fail(self) -> None:
        self.healthy = False

    def recover(self) -> None:
        self.healthy = True

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "ToyService":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
