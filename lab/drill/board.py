"""What the drill shows while it runs: one `Sample` per stage every quarter second, told to every
watcher. `Board` is the terminal's (a table with a row per stage, for a trainer without a browser);
lab/drill/live.py's `LiveFeed` streams the same samples to a browser."""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.live import Live
from rich.table import Table

# A worker's state (lab/drill/slots.py) as one coloured mark.
MARKS = {"i": "[green]·[/]", "b": "[yellow]■[/]", "t": "[red]■[/]"}
LEGEND = "workers: [green]·[/] idle  [yellow]■[/] serving a page  [red]■[/] waiting on Twitter"
COLUMNS = ("stage", "phase", "clock", "views answered", "backlog", "web workers", "job workers", "tweets")


@dataclass
class Sample:
    """One stage at one moment of its load."""

    phase: str  # normal, outage, recovery, drain
    seconds: float  # since the stage's load began
    answered: float | None  # the share of page views so far answered OK; None before the first
    backlog: int | None  # jobs waiting (None: the queue did not answer)
    web: str  # each web worker's state, a letter each (slots.py)
    jobs: str  # each job worker's state
    tweets: int  # tweets Twitter has accepted so far
    requests: list[dict] = field(default_factory=list)  # requests finished since the last sample
    waiting: list[list] = field(default_factory=list)  # [kind, start] of each request still unanswered


def marks(states: str) -> str:
    return "".join(MARKS.get(state, "?") for state in states) or "-"


@dataclass
class Row:
    phase: str
    clock: str = ""
    answered: str = ""
    backlog: str = ""
    web: str = ""
    jobs: str = ""
    tweets: str = ""


class Board:
    def __init__(self, live: Live, scenario: str):
        self.live, self.scenario = live, scenario
        self.rows: dict[str, Row] = {}

    def say(self, stage: str, text: str) -> None:
        """A stage between samples: starting, waiting for its last requests, done."""
        self.rows[stage] = Row(text)
        self.draw()

    def sample(self, stage: str, sample: Sample) -> None:
        self.rows[stage] = Row(
            phase=sample.phase,
            clock=f"{sample.seconds:5.1f} s",
            answered="-" if sample.answered is None else f"{sample.answered:.0%}",
            backlog="-" if sample.backlog is None else str(sample.backlog),
            web=marks(sample.web),
            jobs=marks(sample.jobs),
            tweets=str(sample.tweets),
        )
        self.draw()

    def stage_done(self, stage: str, outcome: dict) -> None:
        self.say(stage, "done")

    def table(self) -> Table:
        table = Table(title=f"drill: {self.scenario}", caption=LEGEND, title_justify="left")
        for column in COLUMNS:
            table.add_column(column, justify="right" if column in ("clock", "backlog", "tweets") else "left")
        for stage, row in self.rows.items():
            table.add_row(stage, row.phase, row.clock, row.answered, row.backlog, row.web, row.jobs, row.tweets)
        return table

    def draw(self) -> None:
        self.live.update(self.table())


class Watchers:
    """Several watchers as one: each call goes to every one of them, in order."""

    def __init__(self, *watchers):
        self.watchers = watchers

    def say(self, stage: str, text: str) -> None:
        for watcher in self.watchers:
            watcher.say(stage, text)

    def sample(self, stage: str, sample: Sample) -> None:
        for watcher in self.watchers:
            watcher.sample(stage, sample)

    def stage_done(self, stage: str, outcome: dict) -> None:
        for watcher in self.watchers:
            watcher.stage_done(stage, outcome)
