"""The lab of hosts' pictures, drawn with matplotlib from the committed results.

- a fault scenario: one panel per run, each comment a dot at the time it was made, as high as its
  tweet took to come; a comment whose tweet never came is a red cross at the top. The fault is shaded.
- a fault scenario, host by host: for each stage's run with the defences it ships, which server
  each Sentinel named the primary, each Redis server's role, and the jobs queued on each, from
  what the lab saw twice a second; and the tweets Twitter received each second.
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
SERVER_COLORS = {"r1": "#1f77b4", "r2": "#ff7f0e", "r3": "#9467bd"}  # a Sentinel's choice, and each server's queue
ROLE_COLORS = {"master": "#2a9d8f", "slave": "#a8dadc"}  # "slave": Redis's word in ROLE for a replica
NO_ANSWER_COLOR = "#d62728"


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


def lanes(samples: list[list]) -> dict[str, list[tuple[float, float, str]]]:
    """Per lane, the spans of time (start, length, colour) the samples show, each half a second."""
    names = ["Sentinel on web", "Sentinel on w1", "Sentinel on w2", *SERVER_COLORS]
    found: dict[str, list[tuple[float, float, str]]] = {name: [] for name in names}
    for sample in samples:
        t = sample[0] - 0.25
        for name, said in zip(names[:3], sample[1:4], strict=True):
            found[name].append((t, 0.5, SERVER_COLORS.get(said, NO_ANSWER_COLOR)))
        for name, server in zip(names[3:], sample[4:], strict=True):
            found[name].append((t, 0.5, ROLE_COLORS.get(server[0], "#999999") if server else NO_ANSWER_COLOR))
    return found


def plot_hosts(runs: list[dict], path: Path) -> None:
    figure, panels = plt.subplots(2, len(runs), figsize=(4.6 * len(runs), 4.6), sharex="col", squeeze=False,
                                  gridspec_kw={"height_ratios": [1.1, 1]})
    for column, result in enumerate(runs):
        top, bottom = panels[0][column], panels[1][column]
        start, end = result["fault"]
        for axes in (top, bottom):
            axes.axvspan(start, max(end, start + 0.3), color=FAULT_COLOR, alpha=0.3, zorder=0)
            axes.tick_params(labelsize=8)
        found = lanes(result["watch"])
        for row, spans in enumerate(reversed(found.values())):
            for t, length, color in spans:
                top.broken_barh([(t, length)], (row + 0.1, 0.8), color=color)
        top.set_yticks([row + 0.5 for row in range(len(found))], list(reversed(found)), fontsize=7)
        top.set_title(f"{result['stage']}: {result['scenario']}", fontsize=9)
        times = [sample[0] for sample in result["watch"]]
        for index, name in enumerate(SERVER_COLORS, start=4):
            queued = [sample[index][1] if sample[index] else None for sample in result["watch"]]
            bottom.plot(times, queued, color=SERVER_COLORS[name], label=f"jobs queued on {name}")
        arrivals = [sent + wait for _, sent, _, wait in result["timeline"] if wait is not None]
        if arrivals:
            seconds = range(int(max(times + arrivals)) + 1)
            per_second = [sum(1 for a in arrivals if s <= a < s + 1) for s in seconds]
            bottom.step(list(seconds), per_second, where="post", color="#555555",
                        label="tweets received per second")
        bottom.set_xlabel("time from the start of the load (s)", fontsize=8)
        bottom.grid(alpha=0.3)
        bottom.set_ylim(bottom=0)
    colors = (*SERVER_COLORS.values(), *ROLE_COLORS.values(), NO_ANSWER_COLOR)
    handles = [plt.Rectangle((0, 0), 1, 1, color=color) for color in colors]
    labels = [*(f"names {name}" for name in SERVER_COLORS), "primary", "replica", "no answer"]
    panels[0][-1].legend(handles, labels, fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1))
    panels[1][-1].legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1))
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


def plot(name: str, runs: list[dict], folder: Path) -> None:
    """The scenario's pictures, into `folder`: NAME.png, and NAME-hosts.png for a fault."""
    if name == scale_out.NAME:
        plot_scale_out(runs, folder / f"{name}.png")
        return
    plot_waits(runs, folder / f"{name}.png")
    plot_hosts([r for r in runs if not changed_defences(r)], folder / f"{name}-hosts.png")
