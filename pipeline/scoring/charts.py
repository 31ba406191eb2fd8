"""PNG charts for score reports: score per group with its 95% interval, score by source length."""

from __future__ import annotations

import io


def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg")  # no display on cluster nodes
    import matplotlib.pyplot as plt

    return plt, plt.figure(figsize=(width, height), dpi=100)


def bar_chart(title: str, labels: list[str], scores: list[float], halfwidths: list[float] | None,
              ylabel: str) -> bytes:
    """Horizontal bars (one per label) with optional error bars; returns PNG bytes."""
    plt, fig = _figure(8, max(2.5, 0.35 * len(labels) + 1.2))
    ax = fig.add_subplot(1, 1, 1)
    y = list(range(len(labels)))
    ax.barh(y, scores, xerr=halfwidths if halfwidths else None, color="#4C72B0", ecolor="#333333", capsize=3)
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set_xlabel(ylabel)
    ax.set_title(title)
    for yi, s in zip(y, scores, strict=True):
        ax.text(s, yi, f" {s:.1f}", va="center", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
