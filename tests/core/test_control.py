"""Pure logic of the control records (no Consul)."""

from __future__ import annotations

import json
import time

from consulha.agent.operations import operator
from consulha.core.control import ControlKeys, HandoverRequest
from consulha.core.records import KvEntry


def entry(data, index=7) -> KvEntry:
    return KvEntry(key="consulha/app/control/handover", value=json.dumps(data).encode(),
                   session=None, modify_index=index, lock_index=0)


def test_request_round_trip_keeps_fields_and_takes_the_index_from_consul():
    request = HandoverRequest(to="b", by="ops@host", from_site="a", from_epoch=12,
                              requested_at=100.0, expires_at=130.0)
    decoded = HandoverRequest.decode(entry(json.loads(request.encode()), index=42))
    assert decoded.to == "b" and decoded.from_epoch == 12 and decoded.modify_index == 42
    assert b"modify_index" not in request.encode()


def test_decode_rejects_garbage_and_ignores_unknown_fields():
    assert HandoverRequest.decode(KvEntry("k", b"not json", None, 1, 0)) is None
    assert HandoverRequest.decode(entry({"to": "b"})) is None  # `by` is required
    decoded = HandoverRequest.decode(entry({"to": "b", "by": "x", "future_field": 1}))
    assert decoded is not None and decoded.to == "b"


def test_live_requests_reserve_the_lock_for_their_target():
    now = time.time()
    pending = HandoverRequest(to="b", by="x", expires_at=now + 30)
    assert pending.live() and pending.names_other_than("a") and not pending.names_other_than("b")
    assert not HandoverRequest(to=None, by="x", expires_at=now + 30).names_other_than("a")
    expired = HandoverRequest(to="b", by="x", expires_at=now - 1)
    assert expired.expired() and not expired.live() and not expired.names_other_than("a")
    refused = pending.with_state("refused", "site b has failing checks")
    assert not refused.live() and refused.reason == "site b has failing checks"


def test_with_state_can_fill_in_the_chosen_target():
    request = HandoverRequest(to=None, by="x", expires_at=time.time() + 5, modify_index=9)
    accepted = request.with_state("accepted", to="c")
    assert (accepted.state, accepted.to, accepted.modify_index) == ("accepted", "c", 9)
    assert request.state == "pending"  # frozen: the original is untouched


def test_keys_and_operator():
    keys = ControlKeys("consulha/app")
    assert keys.handover == "consulha/app/control/handover"
    assert keys.maintenance("a") == "consulha/app/control/maintenance/a"
    assert keys.history == "consulha/app/history"
    assert "@" in operator()
