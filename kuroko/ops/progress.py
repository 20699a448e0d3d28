"""Progress on a terminal (rich) while a pass works through the due items."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn


class PassProgress:
    def __init__(self, console: Console) -> None:
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[order]}"), TimeElapsedColumn(), console=console,
                                 transient=True)
        self.task: TaskID | None = None

    def __enter__(self) -> PassProgress:
        self.progress.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.progress.stop()

    def listener(self, event: str, data: dict[str, Any]) -> None:
        if event == "pass_started":
            self.task = self.progress.add_task("items", total=data["due"], order="")
        elif event == "item_done" and self.task is not None:
            self.progress.update(self.task, completed=data["index"], order=f"{data['item']} → {data['outcome']}")

    def finish(self) -> None:
        if self.task is not None:
            self.progress.remove_task(self.task)
            self.task = None
