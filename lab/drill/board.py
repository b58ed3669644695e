"""The drill's terminal view, for a trainer without a browser: one row per stage, updated with
every sample (phase, clock, page views answered so far, backlog, each worker's state, tweets)."""

from __future__ import annotations

from dataclasses import dataclass

from rich.live import Live
from rich.table import Table

# A worker's state (lab/drill/slots.py) as one coloured mark.
MARKS = {"i": "[green]·[/]", "b": "[yellow]■[/]", "t": "[red]■[/]"}
LEGEND = "workers: [green]·[/] idle  [yellow]■[/] serving a page  [red]■[/] waiting on Twitter"
COLUMNS = ("stage", "phase", "clock", "views answered", "backlog", "web workers", "job workers", "tweets")


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

    def sample(self, stage: str, phase: str, seconds: float, answered: float | None, backlog: int | None,
               slots: tuple[str, str], tweets: int) -> None:
        self.rows[stage] = Row(
            phase=phase,
            clock=f"{seconds:5.1f} s",
            answered="-" if answered is None else f"{answered:.0%}",
            backlog="-" if backlog is None else str(backlog),
            web=marks(slots[0]),
            jobs=marks(slots[1]),
            tweets=str(tweets),
        )
        self.draw()

    def table(self) -> Table:
        table = Table(title=f"drill: {self.scenario}", caption=LEGEND, title_justify="left")
        for column in COLUMNS:
            table.add_column(column, justify="right" if column in ("clock", "backlog", "tweets") else "left")
        for stage, row in self.rows.items():
            table.add_row(stage, row.phase, row.clock, row.answered, row.backlog, row.web, row.jobs, row.tweets)
        return table

    def draw(self) -> None:
        self.live.update(self.table())
