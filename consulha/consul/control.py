"""Reading and writing the operator's intent and the history (values in consulha.core.control).

Both the agent and the CLI go through these functions, so the key layout lives in one place.
Writes that must not race use check-and-set on the key's ModifyIndex.
"""

from __future__ import annotations

import json

from consulha.consul.store import ConsulStore
from consulha.core.control import (
    HISTORY_LIMIT,
    ControlKeys,
    ControlState,
    HandoverRequest,
    HistoryEntry,
    OperatorEvent,
    control_state,
)
from consulha.core.damping import FailureRecord


def read_control(store: ConsulStore, keys: ControlKeys) -> ControlState:
    _, entries = store.get_prefix(keys.prefix)
    return control_state(entries, keys)


def put_request(store: ConsulStore, keys: ControlKeys, request: HandoverRequest) -> bool:
    """Create the request only if none exists (cas=0), or replace exactly the one we read."""
    return store.put(keys.handover, request.encode(), cas=request.modify_index)


def clear_request(store: ConsulStore, keys: ControlKeys, request: HandoverRequest) -> bool:
    return store.delete(keys.handover, cas=request.modify_index)


def read_failures(store: ConsulStore, keys: ControlKeys, site: str) -> FailureRecord | None:
    _, entry = store.get(keys.failures(site))
    return FailureRecord.decode(entry) if entry is not None else None


def put_failures(store: ConsulStore, keys: ControlKeys, record: FailureRecord) -> bool:
    """Replace exactly the record we read (its ModifyIndex; 0: only if there is none yet)."""
    return store.put(keys.failures(record.site), record.encode(), cas=record.modify_index)


def clear_failures(store: ConsulStore, keys: ControlKeys, record: FailureRecord) -> bool:
    """Delete the record only if nobody added a failure since we read it."""
    return store.delete(keys.failures(record.site), cas=record.modify_index)


def read_history(store: ConsulStore, keys: ControlKeys) -> tuple[list[dict], int]:
    _, entry = store.get(keys.history)
    if entry is None:
        return [], 0
    try:
        entries = json.loads(entry.value or b"[]")
    except ValueError:
        entries = []
    return (entries if isinstance(entries, list) else []), entry.modify_index


def append_history(store: ConsulStore, keys: ControlKeys, record: "HistoryEntry | OperatorEvent",
                   attempts: int = 5) -> bool:
    """Append one record with check-and-set, keeping the last HISTORY_LIMIT; False if every
    attempt lost a race (the record is then only in the agent's log)."""
    for _ in range(attempts):
        entries, index = read_history(store, keys)
        entries = (entries + [record.to_json()])[-HISTORY_LIMIT:]
        if store.put(keys.history, json.dumps(entries).encode(), cas=index):
            return True
    return False
