"""The drill's terminal view: a row per stage, each updated in place by its latest sample."""

from rich.console import Console

from lab.drill.board import Board, Sample


class Screen:
    """Stands in for rich's Live: keeps what the board drew last."""

    def update(self, renderable) -> None:
        self.shown = renderable

    def text(self) -> str:
        console = Console(width=140, record=True, color_system=None)
        console.print(self.shown)
        return console.export_text()


def test_each_stage_keeps_one_row_with_its_latest_sample():
    screen = Screen()
    board = Board(screen, "Twitter hangs")
    board.sample("01-naive", Sample("normal", 3.0, 1.0, 0, web="iiii", jobs="", tweets=2))
    board.sample("01-naive", Sample("outage", 25.25, 0.125, 4, web="ttti", jobs="", tweets=23))
    board.say("02-db-queue", "starting")
    lines = [line for line in screen.text().splitlines() if "01-naive" in line or "02-db-queue" in line]
    assert len(lines) == 2
    naive, queued = lines
    assert "outage" in naive and "25.2 s" in naive and "12%" in naive and "■■■·" in naive
    assert "normal" not in naive
    assert "starting" in queued
