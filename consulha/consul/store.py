"""The only module that imports the Consul client library (python-consul2).

Everything else talks to `ConsulStore`, a narrow interface over sessions, KV, agent service and
check registration and TTL updates. Swapping python-consul2 for py-consul (same call shapes) means
changing this module alone.

Failure model: every call either returns a value or raises `ConsulUnavailable` (network error,
timeout, HTTP 5xx other than a refused session) or `ConsulRefused` (a 4xx answer: bad request,
ACL denied). `create_session` raises `CheckNotPassing` when Consul refuses a session because a
listed check is missing or critical. Nothing here retries: callers own retry and backoff.

`HttpPool` lets every group served by one process share one set of HTTP connections (see
docs/scale.md: Consul limits the connections of one client address, 200 by default).
"""

from __future__ import annotations

import json
import threading
from typing import Any, Callable

import consul
import requests
from requests.adapters import HTTPAdapter

from consulha.config import ConsulConfig
from consulha.core.records import KvEntry


class ConsulUnavailable(Exception):
    """Consul did not answer in time, or answered with a server error."""


class ConsulRefused(Exception):
    """Consul understood the request and refused it (4xx): ACL denied, bad request."""


class CheckNotPassing(ConsulRefused):
    """A session was refused because a check it names is missing or critical."""


# 4xx answers. Matched by name: python-consul2 defines these in consul.base, py-consul in
# consul.exceptions, with the same names.
_CLIENT_ERRORS = {"ClientError", "BadRequest", "ACLPermissionDenied", "ACLDisabled", "NotFound"}


def next_index(previous: int, found: int) -> int:
    """The index for the next blocking read after one that answered `found`. Consul's indexes
    can go backwards (a snapshot restored, the newest key of a prefix deleted, an upgrade to more
    granular indexes): blocking on the old one would hide changes until the wait runs out, so
    a lower index, like 0, starts over from 0 (an immediate read that returns a fresh index)."""
    return found if found >= previous and found > 0 else 0


def _is_rate_limited(text: str) -> bool:
    """Consul 1.15+ with request rate limiting answers 429 for a request over the limit:
    python-consul2 raises a client error for it, but it says "try again", not "refused"."""
    return text.startswith("429")


def _entry(raw: dict | None) -> KvEntry | None:
    if raw is None:
        return None
    return KvEntry(
        key=raw["Key"],
        value=raw.get("Value"),
        session=raw.get("Session") or None,
        modify_index=int(raw["ModifyIndex"]),
        lock_index=int(raw.get("LockIndex", 0)),
    )


def _seconds(value: float) -> str:
    return f"{max(value, 0.0):.3f}s"


class _Flight:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None


class HttpPool:
    """HTTP connections shared by every ConsulStore of one process (all its groups).

    Without it each store holds its own keep-alive connections (five per group): one host
    serving 40 groups kept 200 connections open to its local Consul agent, which by default
    refuses more than 200 from one client address (`limits { http_max_conns_per_client }`),
    so heartbeat updates failed exactly when a failover added requests. With it, a process
    holds about one connection per request in flight (the blocking reads) plus a few idle ones.

    `single_flight` makes identical blocking reads share one request: every ineligible group
    of a host waits for the same node's checks to change.
    """

    def __init__(self, groups: int = 1):
        # Requests in flight at once: a standby group's blocking read of its leader key, the
        # host's one watch and a few short requests (renewals, heartbeats). A burst may open
        # more for a moment; keeping them would only hold idle connections against the limit.
        self.size = groups + 4
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=self.size)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self._flights: dict[tuple, _Flight] = {}
        self._lock = threading.Lock()

    def single_flight(self, key: tuple, call: Callable[[], Any]) -> Any:
        """Run `call` unless a call with the same key is in flight; then wait for its answer
        (or its exception). For blocking reads, where an early answer is always allowed."""
        with self._lock:
            flight = self._flights.get(key)
            first = flight is None
            if first:
                flight = self._flights[key] = _Flight()
        if not first:
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            return flight.result
        try:
            flight.result = call()
            return flight.result
        except BaseException as error:
            flight.error = error
            raise
        finally:
            with self._lock:
                del self._flights[key]
            flight.done.set()


class ConsulStore:
    """Sessions, KV and local-agent registration against one Consul agent.

    `request_timeout` bounds every non-blocking call, so a frozen or partitioned agent costs at
    most that long; blocking reads use a second HTTP client whose timeout is the longest wait plus
    Consul's jitter (wait/16) plus `request_timeout`.
    """

    def __init__(self, cfg: ConsulConfig, request_timeout: float = 2.0, max_wait: float = 10.0,
                 pool: HttpPool | None = None):
        # Told (endpoint, result) after every request, result ok, unavailable or refused; the
        # agent counts them in its metrics.
        self.on_request: Callable[[str, str], None] = lambda endpoint, result: None
        self.address = cfg.address
        self.request_timeout = request_timeout
        self.max_wait = max_wait
        self._pool = pool
        self._fast = self._client(cfg, request_timeout, pool)
        self._blocking = self._client(cfg, max_wait * 17 / 16 + request_timeout, pool)

    @staticmethod
    def _client(cfg: ConsulConfig, timeout: float, pool: HttpPool | None) -> consul.Consul:
        verify: bool | str = cfg.ca_file or True
        cert = (cfg.cert_file, cfg.key_file) if cfg.cert_file else None
        client = consul.Consul(
            host=cfg.host, port=cfg.port, scheme=cfg.scheme, verify=verify, cert=cert,
            timeout=timeout,
        )
        # python-consul2 lets CONSUL_HTTP_TOKEN override an explicit token; the config already
        # resolved the precedence (token, token_file, then the environment), so set it last.
        client.token = cfg.token
        if pool is not None:
            # python-consul2 passes timeout, verify and cert with every request, so clients
            # with different timeouts (and tokens) can share one session's connections.
            client.http.session = pool.session
        return client

    def _call(self, function, *args, **kwargs):
        # "Consul.Agent.Check.ttl_pass" -> "agent.check.ttl_pass": a few dozen values at most.
        endpoint = function.__qualname__.removeprefix("Consul.").lower()
        try:
            result = function(*args, **kwargs)
        except requests.exceptions.Timeout:
            self.on_request(endpoint, "unavailable")
            raise ConsulUnavailable(f"consul at {self.address} did not answer in time") from None
        except (requests.exceptions.RequestException, OSError) as error:
            self.on_request(endpoint, "unavailable")
            raise ConsulUnavailable(f"consul at {self.address} unreachable: {type(error).__name__}") from None
        except consul.ConsulException as error:
            text = " ".join(str(error).split())[:200]
            if type(error).__name__ in _CLIENT_ERRORS and not _is_rate_limited(text):
                self.on_request(endpoint, "refused")
                raise ConsulRefused(f"consul at {self.address} refused the request: "
                                    f"{text or type(error).__name__}") from None
            if "critical state" in text or "Missing check" in text or "not registered" in text:
                self.on_request(endpoint, "refused")
                raise CheckNotPassing(text.removeprefix("500 ")) from None
            self.on_request(endpoint, "unavailable")
            raise ConsulUnavailable(f"consul at {self.address} failed: {text}") from None
        self.on_request(endpoint, "ok")
        return result

    # -- KV -------------------------------------------------------------------------------------

    def get(self, key: str, index: int | None = None, wait: float | None = None,
            consistent: bool = True) -> tuple[int, KvEntry | None]:
        """Read one key; with `index` and `wait` it is a blocking query that returns on change
        or after about `wait` seconds. Returns (X-Consul-Index, entry or None)."""
        client = self._blocking if index else self._fast
        found_index, raw = self._call(
            client.kv.get, key, index=index or None,
            wait=_seconds(min(wait, self.max_wait)) if index and wait else None,
            consistency="consistent" if consistent else "default",
        )
        return int(found_index or 0), _entry(raw)

    def get_prefix(self, prefix: str, index: int | None = None,
                   wait: float | None = None) -> tuple[int, list[KvEntry]]:
        client = self._blocking if index else self._fast
        found_index, raws = self._call(
            client.kv.get, prefix, recurse=True, index=index or None,
            wait=_seconds(min(wait, self.max_wait)) if index and wait else None,
        )
        return int(found_index or 0), [_entry(raw) for raw in raws or []]

    def acquire(self, key: str, value: bytes, session: str) -> bool:
        """Try to take the lock; False when another session holds it or lock-delay is running."""
        return bool(self._call(self._fast.kv.put, key, value, acquire=session))

    def release(self, key: str, session: str, value: bytes | None) -> bool:
        """Give the lock back, leaving `value` in the key (Consul writes the value on release).
        No lock-delay follows an explicit release."""
        return bool(self._call(self._fast.kv.put, key, value, release=session))

    def put(self, key: str, value: bytes | None, cas: int | None = None) -> bool:
        """Write a key; with `cas` only if its ModifyIndex still equals `cas` (0: must not exist)."""
        return bool(self._call(self._fast.kv.put, key, value, cas=cas))

    def delete(self, key: str, cas: int | None = None) -> bool:
        return bool(self._call(self._fast.kv.delete, key, cas=cas))

    # -- sessions -------------------------------------------------------------------------------

    def create_session(self, name: str, checks: list[str], ttl: float, lock_delay: float) -> str:
        """A session tied to exactly `checks` (check IDs on this node, service checks included).

        They go in `NodeChecks`, listed explicitly: given the older `Checks` field, Consul 1.8
        adds serfHealth to the session by itself (measured), so a session could never be free
        of it. python-consul2 knows only `Checks`, so the request is built here."""
        payload = {"Name": name, "NodeChecks": list(checks), "Behavior": "release",
                   "TTL": _seconds(max(10.0, ttl)), "LockDelay": _seconds(lock_delay)}
        headers = {"X-Consul-Token": self._fast.token} if self._fast.token else {}
        return self._call(self._fast.http.put, consul.base.CB.json(is_id=True),
                          path="/v1/session/create", params=[], headers=headers,
                          data=json.dumps(payload))

    def renew_session(self, session: str) -> bool:
        """True when renewed; False when Consul no longer knows the session."""
        try:
            return self._call(self._fast.session.renew, session) is not None
        except ConsulRefused as error:
            if "Session id" in str(error) or "not found" in str(error).lower() or str(error) == "":
                return False
            raise

    def destroy_session(self, session: str) -> None:
        self._call(self._fast.session.destroy, session)

    # -- local agent ----------------------------------------------------------------------------

    def agent_self(self) -> dict:
        """The local agent's /v1/agent/self (Config.NodeName, Config.NodeID, Config.Version)."""
        return self._call(self._fast.agent.self)

    def node_name(self) -> str:
        return self.agent_self()["Config"]["NodeName"]

    def local_node(self) -> tuple[str, str]:
        """(node name, node ID) of the local agent."""
        config = self.agent_self()["Config"]
        return config["NodeName"], config.get("NodeID") or ""

    def members(self) -> list[dict]:
        """The LAN members the local agent knows (Name, Status, Tags: role, build, ...)."""
        return self._call(self._fast.agent.members)

    def coordinates(self) -> list[dict]:
        """Network coordinates of the datacenter's nodes (Node, Segment, Coord)."""
        return self._call(self._fast.coordinate.nodes)[1] or []

    def catalog_node_id(self, node: str) -> str | None:
        """The ID the catalog holds for the node of that name (None: not in the catalog)."""
        _, found = self._call(self._fast.catalog.node, node, consistency="consistent")
        return ((found or {}).get("Node") or {}).get("ID")

    def register_service(self, service_id: str, name: str, tags: list[str], meta: dict[str, str],
                         port: int | None, check: dict[str, Any]) -> None:
        """Register (or re-register: Consul keeps the check's current status) a service."""
        self._call(self._fast.agent.service.register, name, service_id=service_id, tags=tags,
                   meta=meta, port=port, check=check)

    def deregister_service(self, service_id: str) -> None:
        self._call(self._fast.agent.service.deregister, service_id)

    def register_check(self, check_id: str, name: str, definition: dict[str, Any], notes: str) -> None:
        """Register (or replace) a node-level check; `definition` as in Consul's check API."""
        self._call(self._fast.agent.check.register, name, check_id=check_id, notes=notes,
                   check=definition)

    def deregister_check(self, check_id: str) -> None:
        self._call(self._fast.agent.check.deregister, check_id)

    def update_ttl(self, check_id: str, status: str, output: str) -> None:
        """Push a TTL check result; `status` is passing, warning or critical."""
        method = {"passing": self._fast.agent.check.ttl_pass,
                  "warning": self._fast.agent.check.ttl_warn,
                  "critical": self._fast.agent.check.ttl_fail}[status]
        self._call(method, check_id, notes=output[-4000:])

    def local_checks(self) -> dict[str, dict]:
        """Checks of the local agent, by CheckID (agent view: may lead the catalog)."""
        return self._call(self._fast.agent.checks)

    def local_services(self) -> dict[str, dict]:
        return self._call(self._fast.agent.services)

    def wait_node_checks(self, node: str, index: int, wait: float) -> int:
        """Block until a check of `node` changes in the catalog (or about `wait` passes);
        returns the index to block on next (next_index). Index 0 answers at once with the
        current one. Groups sharing a pool share one request per (address, node, index): the
        answer is only an index."""
        client = self._blocking if index else self._fast

        def read() -> int:
            found, _ = self._call(client.health.node, node, index=index or None,
                                  wait=_seconds(min(wait, self.max_wait)) if index else None)
            return next_index(index, int(found or 0))
        if self._pool is None:
            return read()
        return self._pool.single_flight(("node-checks", self.address, node, index), read)

    def service_health(self, name: str) -> list[dict]:
        """Every instance of a service in the datacenter with its node and checks."""
        return self._call(self._fast.health.service, name)[1] or []

    def service_maintenance(self, service_id: str, enable: bool, reason: str | None) -> None:
        self._call(self._fast.agent.service.maintenance, service_id, "true" if enable else "false",
                   reason=reason)
