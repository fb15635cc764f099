"""Prometheus metrics and the health endpoints of one agent, on `metrics.listen`.

    /metrics   the Prometheus text format (prometheus-client)
    /leader    200 while this site leads inside its lease, else 503 (for a load balancer)
    /standby   200 while this site is a standby that could take over, else 503
    /health    200 while the agent's HA loop makes progress, else 503 (a liveness probe)

Every metric carries the labels `group` and `site`, so one PromQL expression can compare the
sites of a group (two leaders, no leader). Role, epoch and lease are read from the election at
scrape time, so a scrape never shows a role the agent left; the service checks are read from
the local Consul agent at scrape time too, with a short timeout, in the server's thread.

Metrics are never a reason to lose or refuse leadership: an address that cannot be bound is
logged and the agent carries on without the listener.
"""

from __future__ import annotations

import http.client
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from consulha.config import Config
from consulha.consul.store import ConsulRefused, ConsulStore, ConsulUnavailable
from consulha.core.control import ControlState
from consulha.core.damping import Damping, FailureRecord
from consulha.core.election import Election, Role, Transition
from consulha.core.keys import Keys
from consulha.ops.httpserver import http_server

log = logging.getLogger("consulha.metrics")
# The client library adds a *_created series beside every counter and histogram: twice the series
# for a start time nobody here queries (process-wide setting).
disable_created_metrics()

# The value of consulha_check_status, as a script check's exit code means it.
CHECK_STATUS_VALUES = {"passing": 0, "warning": 1, "critical": 2}
DNS_UPDATE_RESULTS = ("written", "stale_epoch", "failed")
CONVERGENCE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
IDENTITY_HEADER = "X-Consulha-Site"
SCRAPE_CONSUL_TIMEOUT = 1.0


class Metrics:
    """The agent's metric set in a registry of its own; cheap to keep when nobody scrapes it."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.keys = Keys(cfg)
        self.registry = CollectorRegistry(auto_describe=True)
        self.identity_labels = ids = {"group": cfg.group, "site": cfg.site}
        self._election: Election | None = None
        self._making_progress: Callable[[], bool] = lambda: False

        def gauge(name, text, *labels):
            return Gauge(name, text, ["group", "site", *labels], registry=self.registry)

        self.role = gauge("consulha_role", "1 for the role this site is in, 0 for the others.", "role")
        self.leader = gauge("consulha_leader", "1 while this site leads inside its lease.")
        self.epoch = gauge("consulha_epoch", "Epoch of this site's leadership; 0 when not leading.")
        self.lease_remaining = gauge("consulha_lease_remaining_seconds",
                                     "Self-fencing lease left; 0 when not leading.")
        self.last_transition = gauge("consulha_last_transition_timestamp_seconds",
                                     "Unix time of this site's last role transition.")
        self.transitions = Counter("consulha_transitions", "Role transitions of this site.",
                                   ["group", "site", "from", "to", "cause"], registry=self.registry)
        self.dns_converged_gauge = gauge(
            "consulha_dns_converged",
            "1 while this site leads and every verify server answers its value; else 0.")
        self.dns_convergence = Histogram(
            "consulha_dns_convergence_seconds",
            "From this site's DNS write until every verify server answered it.",
            ["group", "site"], buckets=CONVERGENCE_BUCKETS, registry=self.registry)
        self.dns_updates = Counter("consulha_dns_updates", "RFC 2136 updates this site sent.",
                                   ["group", "site", "result"], registry=self.registry)
        self.resolver_converged = gauge(
            "consulha_resolver_converged",
            "1 once the resolver answered the values of this leader's last switch; 0 while it does "
            "not (flush or question failing, or the old value after a flush).", "resolver")
        self.resolver_convergence = Histogram(
            "consulha_resolver_convergence_seconds",
            "From this leader's DNS write until the resolver answered it (flushed, then asked).",
            ["group", "site", "resolver"], buckets=CONVERGENCE_BUCKETS, registry=self.registry)
        self.resolver_flushes = Counter("consulha_resolver_flushes", "Flushes of the managed names "
                                        "on a resolver, by result (ok, failed).",
                                        ["group", "site", "resolver", "result"], registry=self.registry)
        self.resolver_last_flush = gauge("consulha_resolver_last_flush_timestamp_seconds",
                                         "Unix time of the last successful flush of the resolver.", "resolver")
        self.consul_requests = Counter("consulha_consul_requests",
                                       "Requests to Consul by client call and result.",
                                       ["group", "site", "endpoint", "result"],
                                       registry=self.registry)
        self.consul_last_contact = gauge("consulha_consul_last_contact_timestamp_seconds",
                                         "Unix time of the last answer from Consul.")
        self.paused = gauge("consulha_paused", "1 while the group is paused (seen by this site).")
        # Flap damping, from this site's failure record as last read, decayed at scrape time.
        self._failures: FailureRecord | None = None
        damping = Damping(cfg.election.damping)
        gauge("consulha_damping_penalty", "This site's flap-damping penalty now (1 per lost "
              "leadership, halving every half-life).").labels(**ids).set_function(
            lambda: damping.penalty_at(self._failures, time.time()))
        gauge("consulha_damped", "1 while this site's failures hold it down (passed over while "
              "another site is healthy).").labels(**ids).set_function(
            lambda: float(self._failures is not None and self._failures.damped(time.time())))
        gauge("consulha_damping_hold_down_seconds", "Hold-down left for this site; 0 when not "
              "damped.").labels(**ids).set_function(
            lambda: self._failures.hold_down(time.time()) if self._failures else 0.0)
        for result in DNS_UPDATE_RESULTS:
            self.dns_updates.labels(**ids, result=result)
        self.dns_converged_gauge.labels(**ids).set(0)
        self.dns_convergence.labels(**ids)
        self.paused.labels(**ids).set(0)
        self.registry.register(_CheckStatusCollector(self))

    # -- wiring into the agent ------------------------------------------------------------------

    def follow(self, election: Election, making_progress: Callable[[], bool]) -> None:
        """Read role, epoch and lease from `election` at scrape time; count its transitions."""
        self._election = election
        self._making_progress = making_progress
        for role in Role:
            self.role.labels(**self.identity_labels, role=role.value).set_function(
                lambda role=role: float(election.role == role))
        self.leader.labels(**self.identity_labels).set_function(lambda: float(election.is_leader()))
        self.epoch.labels(**self.identity_labels).set_function(
            lambda: float(election.epoch or 0) if election.role == Role.LEADER else 0.0)
        self.lease_remaining.labels(**self.identity_labels).set_function(
            lambda: election.lease.remaining() if election.role == Role.LEADER else 0.0)
        election.subscribe(self._on_transition)

    def _on_transition(self, transition: Transition) -> None:
        self.transitions.labels(**self.identity_labels, **{"from": transition.old.value},
                                to=transition.new.value,
                                cause=transition.reason.cause.value).inc()
        self.last_transition.labels(**self.identity_labels).set(transition.wall)
        if transition.old == Role.LEADER:
            self.dns_converged_gauge.labels(**self.identity_labels).set(0)

    def count_consul_request(self, endpoint: str, result: str) -> None:
        """Called by ConsulStore after every request; result is ok, unavailable or refused."""
        self.consul_requests.labels(**self.identity_labels, endpoint=endpoint, result=result).inc()
        if result != "unavailable":
            self.consul_last_contact.labels(**self.identity_labels).set(time.time())

    def observe_control(self, control: ControlState) -> None:
        """Once per HA pass, with what the agent read under <prefix>/control/."""
        self.paused.labels(**self.identity_labels).set(1 if control.pause is not None else 0)
        if self.cfg.election.damping.enabled:  # off: the rules ignore any record, so do we
            self._failures = control.failures.get(self.cfg.site)

    def dns_update(self, result: str) -> None:
        self.dns_updates.labels(**self.identity_labels, result=result).inc()
        if result == "written":
            self.dns_converged_gauge.labels(**self.identity_labels).set(0)

    def dns_verified(self, converged: bool, seconds: float | None = None) -> None:
        """The verify servers were asked; `seconds` since our write when it converged."""
        self.dns_converged_gauge.labels(**self.identity_labels).set(1 if converged else 0)
        if converged and seconds is not None:
            self.dns_convergence.labels(**self.identity_labels).observe(seconds)

    def resolver_event(self, resolver: str, event: str, seconds: float | None) -> None:
        """From the resolver sweep: "pending" (a switch to follow), "flushed", "flush_failed",
        "converged" (with the seconds since the write)."""
        labels = {**self.identity_labels, "resolver": resolver}
        if event == "pending":
            self.resolver_converged.labels(**labels).set(0)
        elif event == "converged":
            self.resolver_converged.labels(**labels).set(1)
            self.resolver_convergence.labels(**labels).observe(seconds)
        else:
            self.resolver_flushes.labels(**labels, result="ok" if event == "flushed" else "failed").inc()
            if event == "flushed":
                self.resolver_last_flush.labels(**labels).set(time.time())

    # -- what the endpoints answer --------------------------------------------------------------

    def is_leader(self) -> bool:
        return self._election is not None and self._election.is_leader()

    def is_standby(self) -> bool:
        return self._election is not None and self._election.role == Role.STANDBY

    def making_progress(self) -> bool:
        return self._making_progress()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _CheckStatusCollector:
    """consulha_check_status{service}: this site's service checks as the local Consul agent
    sees them now (0 passing, 1 warning, 2 critical); absent when the agent did not answer."""

    def __init__(self, metrics: Metrics):
        self._metrics = metrics
        self._store: ConsulStore | None = None

    def describe(self):
        return [self._family()]

    def collect(self):
        family = self._family()
        if self._store is None:
            self._store = ConsulStore(self._metrics.cfg.consul, SCRAPE_CONSUL_TIMEOUT)
            self._store.on_request = self._metrics.count_consul_request
        try:
            checks = self._store.local_checks()
        except (ConsulUnavailable, ConsulRefused):
            return [family]
        ids = self._metrics.identity_labels
        for service in self._metrics.cfg.services:
            check = checks.get(self._metrics.keys.check_id(service.name))
            if check is not None:
                family.add_metric([ids["group"], ids["site"], service.name],
                                  CHECK_STATUS_VALUES.get(check["Status"], 2))
        return [family]

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily("consulha_check_status",
                                 "Service check of this site: 0 passing, 1 warning, 2 critical.",
                                 labels=["group", "site", "service"])


class MetricsServer:
    """The HTTP listener for `metrics`; does nothing when no listen address is configured."""

    def __init__(self, cfg: Config, metrics: Metrics):
        self.listen = cfg.metrics.listen
        self.identity = f"{cfg.group}/{cfg.site}"
        self.metrics = metrics
        self._server: HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> bool:
        """Bind and serve in a daemon thread. False (logged) when the address cannot be bound:
        the agent goes on doing its HA job without metrics."""
        if self.listen is None:
            return False
        try:
            self._server = http_server(self.listen, _handler(self.metrics, self.identity))
        except OSError as error:
            host, port = self.listen
            log.error("metrics listener not started on %s:%d: %s; the agent carries on without "
                      "/metrics and the health endpoints", host, port, error.strerror or error)
            return False
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics",
                                        daemon=True)
        self._thread.start()
        log.info("metrics and health endpoints on http://%s:%d/", *self.listen)
        return True

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(2)
            self._server = None


def _handler(metrics: Metrics, identity: str):
    probes = {"/leader": metrics.is_leader, "/standby": metrics.is_standby,
              "/health": metrics.making_progress}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._reply(200, metrics.exposition(), CONTENT_TYPE_LATEST)
            elif path in probes:
                ok = probes[path]()
                self._reply(200 if ok else 503, b"ok\n" if ok else b"no\n")
            else:
                self._reply(404, b"not found: try /metrics, /leader, /standby or /health\n")

        def _reply(self, code: int, body: bytes, content_type: str = "text/plain") -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header(IDENTITY_HEADER, identity)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format, *args):
            """Scrapes every few seconds would drown the agent's log."""

    return Handler


def listen_conflict(listen: tuple[str, int], identity: str) -> str | None:
    """Why `listen` cannot be bound now, or None. An address held by the running agent of this
    same site (a config being validated before a restart) is no conflict."""
    try:
        http_server(listen, BaseHTTPRequestHandler).server_close()
        return None
    except OSError as error:
        problem = error.strerror or str(error)
    host, port = listen
    connection = http.client.HTTPConnection(_url_host(host), port, timeout=1)
    try:
        connection.request("GET", "/health")
        holder = connection.getresponse().getheader(IDENTITY_HEADER)
    except (OSError, http.client.HTTPException):
        holder = None
    finally:
        connection.close()
    if holder == identity:
        return None
    return f"cannot listen on {host}:{port}: {problem}" + (
        f" (held by the consulha agent of {holder})" if holder else "")


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    return "::1" if host == "::" else host
