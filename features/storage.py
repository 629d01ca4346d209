"""Atomic writes: a reader never sees a half-written file or folder.

Everything is written to a temporary sibling first and moved into place with `os.replace`,
which is atomic on one file system.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

import pandas as pd


def write_atomic(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp_path)` and move the result to `path` only if it succeeded."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_parquet_atomic(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write one frame as Parquet, atomically."""
    return write_atomic(path, lambda tmp: frame.to_parquet(tmp, index=False))


def write_tables_atomic(
    tables: Mapping[str, pd.DataFrame], out_dir: str | Path, extra_files: Mapping[str, str] = ()
) -> Path:
    """Write `<name>.parquet` for every table (plus small text files) into `out_dir` as a unit.

    The folder is built beside its destination and swapped in whole; an existing folder is
    replaced only after the new one is complete.
    """

    def write(staging: Path) -> None:
        for name, frame in tables.items():
            frame.to_parquet(staging / f"{name}.parquet", index=False)
        for name, text in dict(extra_files).items():
            (staging / name).write_text(text)

    return write_folder_atomic(out_dir, write)


def write_folder_atomic(out_dir: str | Path, write: Callable[[Path], None]) -> Path:
    """Call `write(staging)` to fill a new folder beside `out_dir`, then swap it in whole.

    An existing `out_dir` is replaced only after `write` returned; when it raises, `out_dir` is
    left as it was and the staging folder is removed. (`write` may delete and recreate the
    staging folder, as Spark's overwrite mode does.)
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        write(staging)
        if out_dir.exists():
            retired = out_dir.with_name(f".{out_dir.name}.old")
            shutil.rmtree(retired, ignore_errors=True)
            os.replace(out_dir, retired)
            os.replace(staging, out_dir)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir
