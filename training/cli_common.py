"""What every `nbo` command shares: friendly errors, progress bars, the console."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

console = Console()
error_console = Console(stderr=True)
logger = logging.getLogger(__name__)


@contextlib.contextmanager
def friendly_errors() -> Iterator[None]:
    """Turn input errors (ValueError, FileNotFoundError, KeyError) into a message and exit code 2.

    Bad input is the user's to fix, so they get the message, not a stack trace. Anything else is
    a bug and keeps its traceback.
    """
    try:
        yield
    except (ValueError, FileNotFoundError, KeyError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        error_console.print(f"[bold red]error:[/] {message}", highlight=False, markup=True)
        raise typer.Exit(code=2) from None


@contextlib.contextmanager
def stage_progress(description: str) -> Iterator[Callable[[str, float], None]]:
    """A Rich progress bar driven by `callback(stage_name, fraction_done)`."""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TextColumn("{task.fields[stage]}"),
        TimeElapsedColumn(),
        console=error_console,
        transient=False,
    ) as progress:
        task = progress.add_task(description, total=1.0, stage="")

        def update(stage: str, fraction: float) -> None:
            progress.update(task, completed=min(max(fraction, 0.0), 1.0), stage=stage)

        yield update
        progress.update(task, completed=1.0, stage="done")


def setup_logging(verbose: bool) -> None:
    """Configure logging once, from the entry point (never at import time)."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def resolve_as_of(value: str, data: Path, dataset):
    """`end` = the simulated world's end (or midnight after the last order); else a timestamp."""
    import pandas as pd

    from features.snapshot import data_bounds, parse_timestamp

    if value != "end":
        return parse_timestamp(value, "--as-of")
    meta = Path(data) / "world.json"
    if meta.is_file():
        return parse_timestamp(json.loads(meta.read_text())["end"], "world end")
    _, last = data_bounds(dataset)
    return (pd.Timestamp(last).normalize() + pd.Timedelta(days=1)).as_unit("us")
