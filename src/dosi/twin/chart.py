"""A what-if's KPIs as one PNG: a small panel per KPI, baseline beside variant."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no screen: render straight to PNG
import matplotlib.pyplot as plt

from dosi.twin.kpi import KPI_LABELS, change, formatted

BASELINE, BETTER, WORSE, SAME = "#8a8f98", "#1a7f37", "#cf222e", "#57606a"


def kpi_chart(
    baseline: dict[str, float], variant: dict[str, float], title: str, path: Path
) -> Path:
    keys = [k for k in KPI_LABELS if k in baseline and k in variant]
    columns = 4
    rows = max(1, math.ceil(len(keys) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.6 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys, strict=False):
        kpi = KPI_LABELS[key]
        base, var = baseline[key], variant[key]
        ratio, better = change(key, base, var)
        colour = SAME if better is None else (BETTER if better else WORSE)
        bars = ax.bar(["baseline", "what-if"], [base, var], color=[BASELINE, colour])
        for bar, value in zip(bars, (base, var), strict=True):
            ax.annotate(
                formatted(key, value),
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center", va="bottom", fontsize=8,
            )  # fmt: skip
        shift = "" if not ratio else f"  {ratio:+.1%}"
        ax.set_title(f"{kpi.en}" + (f" ({kpi.unit})" if kpi.unit else "") + shift, fontsize=9)
        ax.tick_params(labelsize=8)
        top = max(base, var)
        ax.set_ylim(0, top * 1.2 if top > 0 else 1)  # counts of zero: an empty panel, not -0.06
        if top <= 0:
            ax.set_yticks([])
        ax.spines[["top", "right"]].set_visible(False)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
