"""Which journal entries concern which subscriptions (clause 5.8 triggers).

A journal entry says what changed; `Delta` sorts the changed attributes into
created, updated and deleted, and `fires` applies a subscription's
notificationTrigger, watchedAttributes and entity filters to it:

- creation: entityCreated, or attributeCreated (creating an entity creates its
  attributes, so the default triggers notify about new entities too);
- deletion: entityDeleted;
- update: attributeCreated / attributeUpdated / attributeDeleted for the
  attributes that were added, changed or removed (entityUpdated is all three).

watchedAttributes, when given, narrows every trigger to changes involving one
of them. q, geoQ, scopeQ and the entity selectors test the entity after the
change (before it, for a deletion).
"""

from __future__ import annotations

from dataclasses import dataclass

from dosi.hub.store.base import JournalEntry
from dosi.hub.subscriptions.model import Spec
from dosi.ngsi.model import ENTITY_RESERVED, Entity


@dataclass(frozen=True)
class Delta:
    created: bool
    deleted: bool
    state: Entity  # the entity after the change; before it for a deletion
    added: frozenset[str]
    updated: frozenset[str]
    removed: frozenset[str]


def delta_of(entry: JournalEntry) -> Delta:
    if entry.before is None:
        assert entry.after is not None
        names = frozenset(k for k in entry.after if k not in ENTITY_RESERVED)
        return Delta(True, False, entry.after, names, frozenset(), frozenset())
    if entry.after is None:
        names = frozenset(k for k in entry.before if k not in ENTITY_RESERVED)
        return Delta(False, True, entry.before, frozenset(), frozenset(), names)
    before, after = entry.before, entry.after
    added, updated, removed = set(), set(), set()
    for attr in entry.changed:
        if attr not in after:
            removed.add(attr)
        elif attr in before:
            updated.add(attr)
        else:
            added.add(attr)
    return Delta(False, False, after, frozenset(added), frozenset(updated), frozenset(removed))


def fires(spec: Spec, delta: Delta) -> bool:
    """Whether this change notifies this subscription (status and throttling aside)."""
    watched = spec.watched
    triggers = spec.triggers
    if delta.created:
        hit = "entityCreated" in triggers or "attributeCreated" in triggers
        if hit and watched is not None:
            hit = not watched.isdisjoint(delta.added)
    elif delta.deleted:
        hit = "entityDeleted" in triggers
        if hit and watched is not None:
            hit = not watched.isdisjoint(delta.removed)
    else:
        hit = (
            ("attributeCreated" in triggers and _touches(delta.added, watched))
            or ("attributeUpdated" in triggers and _touches(delta.updated, watched))
            or ("attributeDeleted" in triggers and _touches(delta.removed, watched))
        )
    return hit and spec.selects(delta.state)


def _touches(attrs: frozenset[str], watched: frozenset[str] | None) -> bool:
    if not attrs:
        return False
    return watched is None or not watched.isdisjoint(attrs)
