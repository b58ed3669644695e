"""The drill's two charts, drawn from `results.json` with matplotlib.

- `plot_latency` shows every request of every stage over time, with the outage shaded;
- `plot_backlog` shows the jobs waiting (or calls in flight) of every stage on one chart.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # draw into files only: no window, no display needed

import matplotlib.pyplot as plt  # noqa: E402  (must come after choosing the backend)
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import FuncFormatter, NullFormatter  # noqa: E402
from matplotlib.transforms import blended_transform_factory  # noqa: E402

LATENCY_IMAGE = "latency.png"
BACKLOG_IMAGE = "backlog.png"

# Sized for a docs page: wide enough to tell seconds apart, short enough per stage to scroll.
FIGURE_WIDTH_INCHES = 10
LATENCY_HEIGHT_PER_STAGE_INCHES = 2.4
BACKLOG_HEIGHT_INCHES = 3.6
DPI = 110

OUTAGE_PHASE = "outage"
OUTAGE_COLOR = "#f4a261"
KIND_STYLES = {  # page views are many and fast: small and light, so comments and uploads stand out
    "view": {"color": "#9e9e9e", "s": 4, "alpha": 0.35, "label": "page view"},
    "comment": {"color": "#1f77b4", "s": 14, "alpha": 0.8, "label": "comment"},
    "upload": {"color": "#2ca02c", "s": 14, "alpha": 0.8, "label": "upload"},
}
FAILED_COLOR = "#d62728"
# A log axis cannot show zero: a request answered "instantly" is drawn at this floor instead.
LATENCY_FLOOR_MS = 0.1


def outage_phases(results: dict) -> list[dict]:
    return [phase for phase in results.get("phases", []) if phase["name"] == OUTAGE_PHASE]


def shade_outage(axes, results: dict) -> None:
    """Shade the outage behind the data, and name it at the top of the band."""
    # x in seconds, y as a fraction of the axes: the label sits at the top on any y scale.
    seconds_by_height = blended_transform_factory(axes.transData, axes.transAxes)
    for phase in outage_phases(results):
        axes.axvspan(phase["start"], phase["end"], color=OUTAGE_COLOR, alpha=0.18, zorder=0)
        axes.text(phase["start"], 0.97, f" {phase['name']}", transform=seconds_by_height,
                  va="top", ha="left", fontsize=8, color="#8a4b00")


def load_seconds(results: dict) -> float:
    """How long the load ran: the end of the last phase, or of the last thing recorded."""
    ends = [phase["end"] for phase in results.get("phases", [])]
    for measured in results["stages"].values():
        ends += [request["start"] for request in measured.get("requests", [])]
        ends += [seconds for seconds, _ in measured.get("backlog", [])]
    return max(ends, default=1.0)


def answered_latencies_ms(results: dict) -> list[float]:
    return [
        request["latency"] * 1000
        for measured in results["stages"].values()
        for request in measured.get("requests", [])
        if request.get("latency") is not None
    ]


def timeout_level_ms(results: dict) -> float:
    """Where to draw requests that never got an answer.

    The drill's client timeout when the results carry it (`client_timeout`, seconds); otherwise
    just above the slowest answer of the whole run, so a timeout always sits above every answer.
    """
    if results.get("client_timeout"):
        return results["client_timeout"] * 1000
    slowest = max(answered_latencies_ms(results), default=1000.0)
    return max(slowest * 1.5, 1.0)


def drawn_latency_ms(request: dict, timeout_ms: float) -> float:
    """The height of a request on the log axis: its latency, or the timeout line if it has none."""
    if request.get("latency") is None:
        return timeout_ms
    return max(request["latency"] * 1000, LATENCY_FLOOR_MS)


def set_margins(figure, top: float, gap: float = 0.0) -> None:
    """Fixed margins, in inches, around the subplots and between them.

    Enough for the axis labels, tick labels and titles this module draws. (`tight_layout` would
    measure them instead, but it draws the whole figure an extra time to do it.)
    """
    width, height = figure.get_size_inches()
    rows = len(figure.axes)
    left, right, bottom = 0.8, 0.3, 0.55
    axes_height = (height - top - bottom - gap * (rows - 1)) / rows
    figure.subplots_adjust(
        left=left / width, right=1 - right / width,
        bottom=bottom / height, top=1 - top / height,
        hspace=gap / axes_height,  # matplotlib counts the gap in axes heights
    )


def plot_latency(results: dict, path: Path | str) -> None:
    """One subplot per stage, stacked on a shared time axis: each request's latency at its start."""
    stages = results["stages"]
    count = max(len(stages), 1)
    # One y scale for every stage too, so a glance down the column compares them.
    figure, axes_list = plt.subplots(
        count, 1, sharex=True, sharey=True, squeeze=False,
        figsize=(FIGURE_WIDTH_INCHES, LATENCY_HEIGHT_PER_STAGE_INCHES * count + 0.8),
    )
    timeout_ms = timeout_level_ms(results)

    for axes, (stage, measured) in zip(axes_list[:, 0], stages.items(), strict=False):
        axes.set_yscale("log")  # page views take milliseconds, Twitter calls seconds: both show
        # Plain numbers ("1000", not a power of ten), on the major ticks only: easier to read.
        axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        axes.yaxis.set_minor_formatter(NullFormatter())
        shade_outage(axes, results)
        requests = measured.get("requests", [])
        for kind, style in KIND_STYLES.items():
            answered = [r for r in requests if r["kind"] == kind and r["outcome"] == "ok"]
            axes.scatter(
                [r["start"] for r in answered],
                [drawn_latency_ms(r, timeout_ms) for r in answered],
                s=style["s"], color=style["color"], alpha=style["alpha"], linewidths=0,
            )
        # Failures in red, shaped by how they failed: a timeout has no latency, so it is drawn on
        # the timeout line; an error came back, so it is drawn at the time it took.
        timeouts = [r for r in requests if r["outcome"] == "timeout"]
        axes.scatter([r["start"] for r in timeouts], [timeout_ms] * len(timeouts),
                     marker="x", s=18, color=FAILED_COLOR, linewidths=1)
        errors = [r for r in requests if r["outcome"] == "error"]
        axes.scatter([r["start"] for r in errors],
                     [drawn_latency_ms(r, timeout_ms) for r in errors],
                     marker="v", s=16, color=FAILED_COLOR, linewidths=0)
        axes.axhline(timeout_ms, color=FAILED_COLOR, linestyle="--", linewidth=0.8, alpha=0.6)
        axes.text(1.0, timeout_ms, "client gives up ", transform=right_edge(axes), ha="right",
                  va="bottom", fontsize=7, color=FAILED_COLOR)

        axes.set_ylabel("latency (ms)")
        axes.set_title(stage, loc="left", fontsize=10, fontweight="bold")
        axes.grid(True, which="major", axis="y", alpha=0.3)

    # Headroom above the timeout line, so the outage's label never sits on the red crosses.
    fastest_ms = min(
        (drawn_latency_ms(request, timeout_ms)
         for measured in stages.values() for request in measured.get("requests", [])),
        default=1.0,
    )
    axes_list[0, 0].set_ylim(fastest_ms / 2, timeout_ms * 6)

    bottom = axes_list[-1, 0]
    bottom.set_xlabel("seconds since the load started")
    bottom.set_xlim(0, load_seconds(results))
    figure.legend(handles=latency_legend(), loc="upper center", ncol=6, frameon=False,
                  fontsize=8)
    set_margins(figure, top=0.6, gap=0.45)  # room for the legend, then each stage's title
    figure.savefig(path, dpi=DPI)
    plt.close(figure)  # figures stay in memory until closed, and a drill draws several


def right_edge(axes):
    """x as a fraction of the axes (1 is the right edge), y in data units."""
    return blended_transform_factory(axes.transAxes, axes.transData)


def latency_legend() -> list:
    handles = [
        Line2D([], [], marker="o", linestyle="", color=style["color"], label=style["label"],
               markersize=4 if kind == "view" else 5)
        for kind, style in KIND_STYLES.items()
    ]
    handles += [
        Line2D([], [], marker="x", linestyle="", color=FAILED_COLOR, label="timeout"),
        Line2D([], [], marker="v", linestyle="", color=FAILED_COLOR, label="error"),
        Patch(color=OUTAGE_COLOR, alpha=0.3, label="outage"),
    ]
    return handles


def plot_backlog(results: dict, path: Path | str) -> None:
    """Every stage's backlog on one chart: where the waiting piles up, and how fast it drains."""
    figure, axes = plt.subplots(figsize=(FIGURE_WIDTH_INCHES, BACKLOG_HEIGHT_INCHES))
    shade_outage(axes, results)
    for stage, measured in results["stages"].items():
        points = measured.get("backlog", [])
        # A sampled count holds until the next sample: steps, not slopes between samples.
        axes.plot([seconds for seconds, _ in points], [waiting for _, waiting in points],
                  drawstyle="steps-post", linewidth=1.5, label=stage)
    axes.set_xlabel("seconds since the load started")
    axes.set_ylabel("jobs waiting or calls in flight")
    axes.set_xlim(0, load_seconds(results))
    axes.set_ylim(bottom=0)
    axes.grid(True, alpha=0.3)
    # Above the chart, as in the latency chart: a legend inside would hide a stage's peak.
    axes.legend(loc="lower left", bbox_to_anchor=(0, 1.01), ncol=4, frameon=False, fontsize=8)
    set_margins(figure, top=0.35)  # room for the legend
    figure.savefig(path, dpi=DPI)
    plt.close(figure)
