"""The bench's PNG: ratios against targets, the month's layers, freshness, the scale law."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

# (summary metric prefix, short label, target ratio, "max": ratio must stay below / "min")
RATIO_TARGETS = (
    ("1 month catch-up e2e vs Spark batch", "month catch-up\n/ Spark batch", 1.5, "max"),
    ("1 large catch-up", "large catch-up\n/ Spark batch", 1.5, "max"),
    ("2 per-batch silver", "silver batch\n/ empty Delta batch", 2.0, "max"),
    ("2 per-batch gold", "gold batch\n/ empty Delta batch", 2.0, "max"),
    ("4 throughput vs Kafka->noop", "throughput\n/ noop reader", 0.3, "min"),
    ("6 query p95 lake vs in-memory", "query p95 lake\n/ in-memory", 3.0, "max"),
    ("6 query p95 before vs after OPTIMIZE", "query p95 before\n/ after OPTIMIZE", 1.3, "max"),
)


def _find(rows: list[dict[str, Any]], prefix: str) -> dict[str, Any] | None:
    for row in rows:
        if row["metric"].startswith(prefix) and row["ratio"] is not None:
            return row
    return None


def draw(out: dict[str, Any], rows: list[dict[str, Any]], png: Path) -> None:
    fig, axes = plt.subplots(2, 2, figsize=(14, 10))
    _ratios(axes[0][0], rows)
    _month(axes[0][1], out)
    _freshness(axes[1][0], out)
    _scale(axes[1][1], out)
    m = out.get("machine", {})
    fig.suptitle(
        f"meterlake bench ({out.get('mode')}), {out.get('started_utc')}: {m.get('cores')} cores, "
        f"{m.get('memory_mb', 0) / 1024:.0f} GB, load {out.get('load_average_start')} -> "
        f"{out.get('load_average_end')}\n(a shared machine: a load above 2 slows every figure; "
        "JVM start excluded everywhere)", fontsize=11,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(png, dpi=110)
    plt.close(fig)


def _ratios(ax, rows: list[dict[str, Any]]) -> None:
    labels, values, targets, colours = [], [], [], []
    for prefix, label, target, kind in RATIO_TARGETS:
        row = _find(rows, prefix)
        if row is None:
            continue
        ratio = row["ratio"]
        met = ratio <= target if kind == "max" else ratio >= target
        labels.append(label)
        values.append(ratio)
        targets.append(target)
        colours.append("tab:green" if met else "tab:red")
    if not values:
        ax.text(0.5, 0.5, "no ratios measured", ha="center", transform=ax.transAxes)
        ax.axis("off")
        return
    x = range(len(values))
    ax.bar(x, values, color=colours, alpha=0.8)
    for i, (v, t) in enumerate(zip(values, targets, strict=True)):
        ax.plot([i - 0.4, i + 0.4], [t, t], color="black", lw=2)
        ax.text(i, v, f"{v:.2f}x", ha="center", va="bottom", fontsize=9)
    ax.set_xticks(list(x))
    ax.set_xticklabels(labels, fontsize=7.5, rotation=35, ha="right")
    ax.set_yscale("log")
    ax.set_ylabel("ratio (log scale)")
    ax.set_title("Ratios vs targets (black line = target; green met, red missed;\n"
                 "throughput must be above its line, the others below)", fontsize=10)


def _month(ax, out: dict[str, Any]) -> None:
    c = out.get("catchup_month")
    if not c or not c.get("layers_median_s"):
        ax.text(0.5, 0.5, "no catch-up measured", ha="center", transform=ax.transAxes)
        ax.axis("off")
        return
    layers = c["layers_median_s"]
    bottom = 0.0
    for layer, colour in (("bronze", "#b08d57"), ("silver", "#9ea7b0"), ("gold", "#d4af37")):
        ax.bar(0, layers[layer], bottom=bottom, color=colour, label=f"pipeline {layer}")
        bottom += layers[layer]
    ax.bar(1, c["spark_batch_median_s"], color="tab:blue", label="one Spark batch job")
    if c.get("oracle_median_s"):
        ax.bar(2, c["oracle_median_s"], color="tab:purple", label="DuckDB oracle")
    ax.axhline(60, color="black", ls="--", lw=1, label="target: month < 60 s")
    for i, v in enumerate((c["pipeline_median_s"], c["spark_batch_median_s"],
                           c.get("oracle_median_s"))):
        if v:
            ax.text(i, v, f"{v:.1f} s", ha="center", va="bottom", fontsize=9)
    ax.set_ylim(0, max(bottom, c["pipeline_median_s"], 60) * 1.15)
    ax.set_xticks([0, 1, 2])
    ax.set_xticklabels(["pipeline\n(run_once)", "Spark batch", "DuckDB oracle"])
    ax.set_ylabel("seconds (medians; layers: median of each layer)")
    ax.set_title(f"Catch-up of the month: {c['input']}", fontsize=10)
    ax.legend(fontsize=8)


def _freshness(ax, out: dict[str, Any]) -> None:
    lv = out.get("live")
    if not lv or not lv.get("latency_histogram"):
        ax.text(0.5, 0.5, "no freshness measured", ha="center", transform=ax.transAxes)
        ax.axis("off")
        return
    hist = lv["latency_histogram"]
    xs = [float(k) for k in hist]
    ax.bar(xs, list(hist.values()), width=0.45, align="edge", color="tab:cyan")
    for value, name, colour in ((lv["p50_s"], "p50", "tab:green"), (lv["p99_s"], "p99", "tab:red")):
        if value is not None:
            ax.axvline(value, color=colour, lw=2, label=f"{name} = {value:.2f} s")
    ax.axvline(3, color="tab:green", ls=":", label="target p50 3 s")
    ax.axvline(8, color="tab:red", ls=":", label="target p99 8 s")
    ax.set_xlabel("seconds from send to the reading's effect visible in gold (DuckDB)")
    ax.set_ylabel("readings")
    ax.set_title(f"Freshness: live, {lv['trigger']} triggers, 11 meters at speedup "
                 f"{lv['speedup']:g}, {lv['latencies_measured']:,} readings", fontsize=10)
    ax.legend(fontsize=8)


def _scale(ax, out: dict[str, Any]) -> None:
    s = out.get("scale")
    if not s or not s.get("points"):
        ax.text(0.5, 0.5, "no scale law measured", ha="center", transform=ax.transAxes)
        ax.axis("off")
        return
    pts = s["points"]
    xs = [p["readings"] for p in pts]
    ys = [p["seconds"] for p in pts]
    ax.loglog(xs, ys, "o", color="tab:orange", ms=8, label="pipeline catch-up (run_once)")
    for p in pts:
        ax.annotate(f"{p['meters']} m x {p['hours']:g} h\n{p['readings_per_s']:,.0f}/s",
                    (p["readings"], p["seconds"]), textcoords="offset points", xytext=(5, -18),
                    fontsize=8)
        if "spark_batch" in p:
            ax.loglog([p["readings"]], [p["spark_batch"]["seconds"]], "s", color="tab:blue",
                      label="Spark batch job")
        if "oracle" in p:
            ax.loglog([p["readings"]], [p["oracle"]["seconds"]], "^", color="tab:purple",
                      label="DuckDB oracle")
    ax.set_xlabel("readings")
    ax.set_ylabel("seconds")
    ax.set_title("Scale law: catch-up time vs work (meters x span)", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)


if __name__ == "__main__":  # redraw a result file: python -m bench.chart results/x.json
    import json
    import sys

    source = Path(sys.argv[1])
    data = json.loads(source.read_text())
    draw(data, data.get("summary", []), source.with_suffix(".png"))
