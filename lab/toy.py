"""Toy services for the demo, tests and benchmarks, each one you can break: an HTTP health
endpoint, a TCP port, a worker process."""

from __future__ import annotations

import http.server
import socket
import subprocess
import sys
import threading


class _Server(http.server.ThreadingHTTPServer):
    # socketserver's default listen backlog is 5. One toy behind 40 groups' checks (80 probes a
    # second in bench/scale.py) overflowed it on a loaded machine: a dropped SYN is retried after
    # 1 s, the check's timeout, so healthy services went critical and groups failed over.
    request_queue_size = 128
    daemon_threads = True


def answer(handler: http.server.BaseHTTPRequestHandler, code: int, body: str) -> None:
    """Send one complete HTTP answer: `code` with `body` as text."""
    data = body.encode()
    handler.send_response(code)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


class ToyService:
    """Serves GET /health on 127.0.0.1: 200 while `healthy`, 503 after `fail()`."""

    def __init__(self, name: str = "toy"):
        self.name = name
        self.healthy = True
        toy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                answer(self, 200 if toy.healthy else 503, f"{toy.name} {'ok' if toy.healthy else 'failing'}\n")

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


class ToyTcpService:
    """Listens on 127.0.0.1 and accepts (and closes) connections, as a database's port does for
    a TCP check; `fail()` closes the port, so connections are refused."""

    def __init__(self, name: str = "toy-tcp"):
        self.name = name
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:  # the port was closed: fail() or stop()
                return
            connection.close()

    def start(self) -> "ToyTcpService":
        self._thread.start()
        return self

    def fail(self) -> None:
        # shutdown() wakes the accept() blocked in the thread; close() alone would not.
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        self._thread.join(5)

    stop = fail


class ToyWorker:
    """A process whose command line carries `tag`, for a script check with
    checks/check_process.sh; `fail()` kills it, as a crashed worker."""

    def __init__(self, tag: str):
        self.tag = tag
        self._process: subprocess.Popen | None = None

    def start(self) -> "ToyWorker":
        self._process = subprocess.Popen(
            [sys.executable, "-c", "import signal; signal.pause()", self.tag],
            stdin=subprocess.DEVNULL, start_new_session=True)
        return self

    def fail(self) -> None:
        if self._process and self._process.poll() is None:
            self._process.kill()
            self._process.wait(5)

    stop = fail
