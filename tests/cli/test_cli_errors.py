"""Every operator command, when Consul fails under it, says so in one line naming what failed
and where, exits 1, and prints no traceback and no secret (`status` also shows what it could
still read, with the failure as its one error line).

The failures: nothing listening, a real Consul refusing an unknown ACL token (403), a server
answering 500, and one that accepts the connection and never answers (timeout).
"""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import sys
import threading

import pytest

from lab.consul import ConsulDev
from lab.pair import SITE_VALUES
from lab.ports import free_port
from lab.site import http_service, site_config, write_config

pytestmark = pytest.mark.integration

TOKEN = "5e0c1c87-0000-4000-8000-00000000dead"
COMMANDS = {
    "status": ["status"],
    "handover": ["handover", "--timeout", "3s"],
    "takeover": ["takeover", "--site", "b", "--yes", "--timeout", "3s"],
    "maintenance": ["maintenance", "on", "--timeout", "3s"],
    "history": ["history"],
    "pause": ["pause", "--yes"],
    "resume": ["resume"],
    "cleanup": ["cleanup"],
    "dry-run": ["handover", "--dry-run"],
}


class Answer500(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"rpc error making call: No cluster leader"
        self.send_response(500)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_PUT = do_DELETE = do_GET

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def failing_consuls(tmp_path_factory):
    """address per failure kind; all torn down after the module."""
    acl = ConsulDev(tmp_path_factory.mktemp("acl-consul"),
                    extra_hcl=('acl { enabled = true, default_policy = "allow" }',)).start()
    server_500 = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer500)
    threading.Thread(target=server_500.serve_forever, daemon=True).start()
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)  # accepts (the kernel does) and never answers
    try:
        yield {
            "unreachable": (f"http://127.0.0.1:{free_port()}", "unreachable"),
            "acl denied": (acl.address, "refused the request"),
            "server error": (f"http://127.0.0.1:{server_500.server_address[1]}", "No cluster leader"),
            "timeout": (f"http://127.0.0.1:{silent.getsockname()[1]}", "did not answer in time"),
        }
    finally:
        server_500.shutdown()
        silent.close()
        acl.stop()


@pytest.mark.parametrize("failure", ["unreachable", "acl denied", "server error", "timeout"])
@pytest.mark.parametrize("command", COMMANDS)
def test_consul_failing_is_one_line_and_exit_1(tmp_path, named, failing_consuls, failure, command):
    address, words = failing_consuls[failure]
    dns = {"zone": named.zone, "record": named.records[0], "server": f"127.0.0.1:{named.port}",
           "tsig": {"name": named.key_name, "secret_file": str(named.tsig_key_file())}}
    document = site_config("a", address, dns, [http_service("api", "http://127.0.0.1:9/")], SITE_VALUES["a"])
    document["consul"]["token"] = TOKEN
    config = write_config(tmp_path / "a.yaml", document)
    done = subprocess.run([sys.executable, "-m", "consulha.cli", *COMMANDS[command], "-c", str(config)],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "COLUMNS": "400"})  # rich wraps at the width
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "Traceback" not in output and TOKEN not in output and named.secret not in output, output
    # `status` still shows what it could read (DNS answers), with the failure as its error line.
    lines = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and words in lines[0] and address.split("//")[1] in lines[0], output
    if command != "status":
        assert output.strip() == lines[0], output
