"""Local truth: when the local Consul agent sees one of our checks critical but the session it
is tied to still stands, the catalog is blind to it. Say why, in words an operator can act on."""

from __future__ import annotations

from consulha.consul.store import ConsulRefused, ConsulStore, ConsulUnavailable


def explain_blind_catalog(store: ConsulStore) -> str:
    """Why the servers may not know what the local agent knows (one extra read, on step-down)."""
    try:
        node, local_id = store.local_node()
        catalog_id = store.catalog_node_id(node)
    except (ConsulUnavailable, ConsulRefused) as error:
        return f"could not compare with the catalog: {error}"
    if catalog_id and local_id and catalog_id != local_id:
        return (f"the catalog's node {node} has ID {catalog_id}, this Consul agent has {local_id}: "
                f"the servers refuse its updates (its data dir was lost?). Remove the stale node "
                f"(consul force-leave {node}, or PUT /v1/catalog/deregister) or give the agent its "
                f"old node_id")
    return ("the local Consul agent's update has not reached the servers yet (anti-entropy "
            "sync failing or slow: see the Consul agent's log)")
