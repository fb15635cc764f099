"""The adapter's reading of answers that differ between Consul 1.8 and current releases (no
Consul: python-consul2's exceptions as it raises them for each answer, docs/consul-api.md)."""

import consul.base
import pytest

from consulha.config import ConsulConfig
from consulha.consul.store import CheckNotPassing, ConsulRefused, ConsulStore, ConsulUnavailable, next_index


@pytest.mark.parametrize("previous, found, expected", [
    (0, 412, 412),     # first answer: block on it
    (412, 412, 412),   # a timeout with no change
    (412, 530, 530),
    (530, 412, 0),     # went backwards (snapshot restore, deletion, finer indexes): start over
    (530, 0, 0),       # 0 is never an index to block on
])
def test_next_index(previous, found, expected):
    assert next_index(previous, found) == expected


def answer(error):
    def raising():
        raise error
    return raising


STORE = ConsulStore(ConsulConfig(address="http://127.0.0.1:1"))


@pytest.mark.parametrize("body", [
    "Permission denied",                                                        # 1.8
    "Permission denied: token with AccessorID '5b1c' lacks permission 'key:write' on "
    "\"consulha/app/leader\"",                                                  # 1.12+
])
def test_acl_denials_of_old_and_new_releases_are_refusals(body):
    with pytest.raises(ConsulRefused, match="refused the request"):
        STORE._call(answer(consul.base.ACLPermissionDenied(body)))


@pytest.mark.parametrize("body", [
    "500 rpc error making call: Check 'service:app-a-api' is in critical state",   # 1.8
    "500 Check 'service:app-a-api' is in critical state",
    "500 rpc error making call: Missing check 'consulha-app-a-heartbeat' registration",
])
def test_session_refusals_name_the_check(body):
    with pytest.raises(CheckNotPassing) as raised:
        STORE._call(answer(consul.base.ConsulException(body)))
    assert "'" in str(raised.value) and not str(raised.value).startswith("500")


def test_a_rate_limited_request_is_unavailable_not_refused():
    # Consul 1.15+ with limits.request_limits enforcing: 429 for a request over the limit
    with pytest.raises(ConsulUnavailable):
        STORE._call(answer(consul.base.ClientError("429 rate limit exceeded, try again later")))
    with pytest.raises(ConsulRefused):
        STORE._call(answer(consul.base.ClientError("409 conflict")))
