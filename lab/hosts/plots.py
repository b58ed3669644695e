"""The lab of hosts' pictures, drawn with matplotlib from the committed results.

- a fault scenario: one panel per run, each comment a dot at the time it was made, as high as its
  tweet took to come; a comment whose tweet never came is a red cross at the top. The fault is shaded.
- scale-out: drain time and tweets per second against the number of job worker hosts, per stage.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # draw into files only: no window, no display needed

import matplotlib.pyplot as plt  # noqa: E402  (must come after choosing the backend)

from lab.hosts import scale_out  # noqa: E402
from lab.hosts.verdicts import changed_defences  # noqa: E402

FAULT_COLOR = "#f4a261"
TWEETED_COLOR = "#1f77b4"
MISSING_COLOR = "#d62728"
DPI = 110


def plot_waits(runs: list[dict], path: Path) -> None:
    figure, panels = plt.subplots(1, len(runs), figsize=(4.2 * len(runs), 3.2), sharey=True, squeeze=False)
    slowest = max((wait for r in runs for _, _, _, wait in r["timeline"] if wait is not None), default=1.0)
    top = slowest * 1.15 + 0.5
    for axes, result in zip(panels[0], runs, strict=True):
        start, end = result["fault"]
        axes.axvspan(start, max(end, start + 0.3), color=FAULT_COLOR, alpha=0.3, zorder=0)
        tweeted = [(sent, wait) for _, sent, accepted, wait in result["timeline"] if accepted and wait is not None]
        missing = [sent for _, sent, accepted, wait in result["timeline"] if accepted and wait is None]
        refused = [sent for _, sent, accepted, _ in result["timeline"] if not accepted]
        axes.scatter([s for s, _ in tweeted], [w for _, w in tweeted], s=8, color=TWEETED_COLOR, label="tweeted")
        axes.scatter(missing, [top * 0.95] * len(missing), s=14, marker="x", color=MISSING_COLOR,
                     label="no tweet")
        if refused:
            axes.scatter(refused, [0] * len(refused), s=14, marker="|", color="black", label="refused")
        changed = changed_defences(result)
        axes.set_title(result["stage"] + (f"\n{', '.join(changed)}" if changed else ""), fontsize=9)
        axes.set_xlabel("comment made at (s)", fontsize=8)
        axes.set_ylim(-0.3, top)
        axes.tick_params(labelsize=8)
        axes.grid(alpha=0.3)
    panels[0][0].set_ylabel("wait for its tweet (s)", fontsize=8)
    panels[0][0].legend(fontsize=7, loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    plt.close(figure)


def plot_scale_out(runs: list[dict], path: Path) -> None:
    figure, (drain_axes, rate_axes) = plt.subplots(1, 2, figsize=(8.4, 3.2))
    for result in runs:
        hosts = [r["hosts"] for r in result["rounds"]]
        drain_axes.plot(hosts, [r["drain"] for r in result["rounds"]], marker="o", label=result["stage"])
        rate_axes.plot(hosts, [r["per_second"] for r in result["rounds"]], marker="o", label=result["stage"])
    for axes, label in ((drain_axes, "drain time (s)"), (rate_axes, "tweets per second")):
        axes.set_xlabel("job worker hosts", fontsize=8)
        axes.set_ylabel(label, fontsize=8)
        axes.set_xticks([r["hosts"] for r in runs[0]["rounds"]])
        axes.set_ylim(bottom=0)
        axes.tick_params(labelsize=8)
        axes.grid(alpha=0.3)
    rate_axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    plt.close(figure)


def plot(name: str, runs: list[dict], path: Path) -> None:
    if name == scale_out.NAME:
        plot_scale_out(runs, path)
    else:
        plot_waits(runs, path)
