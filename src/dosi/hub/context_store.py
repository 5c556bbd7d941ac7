"""Hosted @contexts outlive restarts and are shared by every worker process.

Each hosted (or implicitly created) context is one key in the store's kv
table, written when it is created and removed when it is deleted, so workers
never overwrite each other's contexts. A worker that meets a hosted context
URL it does not know reloads them before giving up.
"""

from __future__ import annotations

from typing import Any

import orjson

from dosi.hub.state import HubState
from dosi.ngsi.errors import NgsiError

KV_NAMESPACE = "jsonldContexts"
CONTEXTS_PATH = "/ngsi-ld/v1/jsonldContexts/"


async def save_change(state: HubState, event: str, record: dict[str, Any]) -> None:
    key = str(record["localId"])
    if event == "created":
        await state.store.kv_put(KV_NAMESPACE, key, orjson.dumps(record))
    elif event == "deleted":
        await state.store.kv_delete(KV_NAMESPACE, key)


async def restore(state: HubState) -> None:
    await state.settle()  # this worker's own changes first
    records = [orjson.loads(value) for _, value in await state.store.kv_items(KV_NAMESPACE)]
    known = {info.local_id for info in state.contexts.list()}
    fresh = [r for r in records if r.get("localId") not in known]
    if fresh:
        state.contexts.import_hosted(fresh)


async def ensure_known(state: HubState, ref: str | None) -> None:
    """Before using one of our own contexts (by URL or id), load it if another worker made it."""
    if ref is None or (":" in ref and CONTEXTS_PATH not in ref):
        return  # nothing, or someone else's URL
    try:
        state.contexts.get(ref, count_hit=False)
    except NgsiError:
        await restore(state)
