"""Storage backends behind one interface: `Store` (see base.py)."""

from dosi.hub.store.base import Change, Mutation, Outcome, Prefilter, Selection, Store

__all__ = ["Change", "Mutation", "Outcome", "Prefilter", "Selection", "Store"]
