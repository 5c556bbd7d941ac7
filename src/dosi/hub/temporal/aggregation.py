"""Aggregation methods (clause 4.5.19) computed from mergeable period statistics.

The backend sums, counts and bounds in SQL (raw rows and hourly rollups alike);
only these few divisions happen here. Numeric methods use numeric values only
(booleans, strings and structures do not count); a period without numbers has
no value for them and is left out of that method's list. `totalCount` counts
every instance in the period, deletions included (they are part of the temporal
representation); `stddev` is the sample standard deviation (n - 1), 0 for one value.
"""

from __future__ import annotations

import math

from dosi.hub.store.temporal import Stats


def method_value(method: str, stats: Stats) -> float | int | None:
    """The value of `method` over one period, or None when it has none."""
    if method == "totalCount":
        return stats.count
    if method == "distinctCount":
        return stats.distinct
    if stats.numbers == 0:
        return None
    if method == "sum":
        return stats.total
    if method == "avg":
        return stats.total / stats.numbers
    if method == "min":
        return stats.low
    if method == "max":
        return stats.high
    if method == "sumsq":
        return stats.sumsq
    if method == "stddev":
        if stats.numbers < 2:
            return 0.0
        mean = stats.total / stats.numbers
        variance = (stats.sumsq - stats.numbers * mean * mean) / (stats.numbers - 1)
        return math.sqrt(max(variance, 0.0))
    raise ValueError(f"unknown aggregation method {method!r}")
