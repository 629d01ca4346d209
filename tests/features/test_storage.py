"""Atomic writes: a file or folder is replaced only by a complete new one; a failed write leaves
the previous output and no staging files behind."""

from __future__ import annotations

import pandas as pd
import pytest

from features.storage import write_atomic, write_folder_atomic, write_tables_atomic


def _listing(folder):
    return sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*"))


def test_a_folder_is_swapped_in_whole(tmp_path):
    out = tmp_path / "decisions"
    write_folder_atomic(out, lambda staging: (staging / "part-0.parquet").write_text("old"))
    write_folder_atomic(out, lambda staging: (staging / "part-1.parquet").write_text("new"))
    assert _listing(tmp_path) == ["decisions", "decisions/part-1.parquet"]  # no old parts, no staging left
    assert (out / "part-1.parquet").read_text() == "new"


def test_a_failed_folder_write_keeps_the_previous_folder(tmp_path):
    out = tmp_path / "decisions"
    write_folder_atomic(out, lambda staging: (staging / "part-0.parquet").write_text("old"))

    def half_then_fail(staging):
        (staging / "part-0.parquet").write_text("half")
        raise RuntimeError("executor lost")

    with pytest.raises(RuntimeError, match="executor lost"):
        write_folder_atomic(out, half_then_fail)
    assert _listing(tmp_path) == ["decisions", "decisions/part-0.parquet"]
    assert (out / "part-0.parquet").read_text() == "old"


def test_a_writer_may_recreate_the_staging_folder(tmp_path):
    """Spark's overwrite mode deletes the target folder and writes it anew."""
    import shutil

    def recreate(staging):
        shutil.rmtree(staging)
        staging.mkdir()
        (staging / "_SUCCESS").write_text("")

    out = write_folder_atomic(tmp_path / "spark", recreate)
    assert _listing(tmp_path) == ["spark", "spark/_SUCCESS"]
    assert out == tmp_path / "spark"


def test_tables_and_files_fail_as_a_unit(tmp_path):
    out = tmp_path / "report"
    write_tables_atomic({"a": pd.DataFrame({"x": [1]})}, out, {"note.txt": "first"})
    with pytest.raises(AttributeError):
        write_tables_atomic({"a": pd.DataFrame({"x": [2]}), "b": "not a frame"}, out, {"note.txt": "second"})
    assert _listing(tmp_path) == ["report", "report/a.parquet", "report/note.txt"]
    assert pd.read_parquet(out / "a.parquet")["x"].tolist() == [1]


def test_a_failed_file_write_keeps_the_previous_file(tmp_path):
    path = tmp_path / "summary.json"
    write_atomic(path, lambda tmp: tmp.write_text("{}"))

    def fail(tmp):
        tmp.write_text("{")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, fail)
    assert path.read_text() == "{}" and _listing(tmp_path) == ["summary.json"]
