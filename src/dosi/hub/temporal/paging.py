"""Partial temporal answers (clause 6.3.10): 206 with Content-Range when instances were cut.

An answer is cut when lastN left instances out, or when an attribute held
more than the hub returns at once (the per-attribute cap, or the share of
the per-answer cap). The header is `date-time <start>-<end>/<size>`:

- lastN (paging backwards): start is timeAt for before, endTimeAt for between,
  else the newest time returned; end the oldest time returned; size is lastN.
  Every attribute keeps its own newest lastN instances.
- otherwise (paging forwards): every attribute of the answer is cut at the
  earliest last time among the cut ones, so one follow-up query with
  timerel=after&timeAt=<end> continues all of them; start is timeAt for after
  and between, else the oldest time returned; size is `*`.

Aggregated answers page the same way over period starts.
"""

from __future__ import annotations

from dosi.hub.store.temporal import Series, TemporalPage
from dosi.hub.temporal.params import TemporalParams, iso


def content_range(page: TemporalPage, tp: TemporalParams) -> str | None:
    """Trim `page` in place as described above; the header value, or None if nothing was cut."""
    series = [s for entity in page.entities for s in entity.series]
    cut = [s for s in series if s.truncated and _times(s)]
    if not cut:
        return None
    if tp.last_n is not None and tp.aggregation is None:
        returned = [t for s in series for t in _times(s)]
        newest, oldest = max(returned), min(returned)
        if tp.timerel == "before" and tp.time_at is not None:
            newest = tp.time_at
        elif tp.timerel == "between" and tp.end_time_at is not None:
            newest = tp.end_time_at
        return f"date-time {iso(newest)}-{iso(oldest)}/{tp.last_n}"
    end = min(_times(s)[-1] for s in cut)
    for s in series:
        s.instances = [i for i in s.instances if i.time <= end]
        s.buckets = [b for b in s.buckets if b.start <= end]
    returned = [t for s in series for t in _times(s)]
    start = min(returned)
    if tp.timerel in ("after", "between") and tp.time_at is not None:
        start = tp.time_at
    return f"date-time {iso(start)}-{iso(end)}/*"


def _times(series: Series) -> list[int]:
    if series.buckets:
        return [b.start for b in series.buckets]
    return [i.time for i in series.instances]
