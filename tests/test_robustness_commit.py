"""The journaled commit and the signal handling of a run, in-process (one shared Spark session):
a crash in the middle of a commit is rolled forward by the next run, a staging directory without
journal is removed, SIGTERM during a Spark job, inside a py4j call and during the commit, and
what a good run with odd values writes (escaped TSV cells, no rare value outside sensitive/).
"""

from __future__ import annotations

import contextlib
import csv
import os
import signal
import threading
import time

import pandas as pd
import pytest
import yaml

from ksynth_spark import io
from ksynth_spark.errors import RunInterrupted
from ksynth_spark.run_state import LOCK_NAME, RunTransaction
from tests.test_robustness_matrix import MARKER, good_rows, run_cli


def _stage_files(spark, staging, contents: dict[str, str]) -> None:
    for name, text in contents.items():
        area, file = name.split("/", 1) if "/" in name else ("", name)
        io.write_text(spark, staging.path(area, file), text)


def _tree(root) -> dict[str, str]:
    return {os.path.relpath(os.path.join(d, f), root): open(os.path.join(d, f)).read()
            for d, _, files in os.walk(root) for f in files}


@contextlib.contextmanager
def _sigterm_ignored():
    """A safety net: a SIGTERM outside a transaction must not stop the test process."""
    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_commit_killed_halfway_is_completed_by_the_next_run(spark, tmp_path, monkeypatch, caplog):
    out = tmp_path / "out"
    old = {"release/a.tsv": "old a", "release/b.tsv": "old b", "tables/t/part": "old t", "my_config.json": "old"}
    new = {"release/a.tsv": "new a", "release/b.tsv": "new b", "tables/t/part": "new t", "my_config.json": "new"}
    for contents in (old, new):
        staging = io.Staging(spark, str(out))
        _stage_files(spark, staging, contents)
        if contents is old:
            staging.commit()
    moved = []
    original = io._move

    def crash_after_two(fs, source, target):
        if len(moved) == 2:
            raise SystemExit("killed")  # no cleanup runs, as with SIGKILL
        moved.append(str(target))
        original(fs, source, target)

    monkeypatch.setattr(io, "_move", crash_after_two)
    with pytest.raises(SystemExit):
        staging.commit()
    monkeypatch.setattr(io, "_move", original)
    half = _tree(out)
    assert half["tables/t/part"] == "new t" and half["release/b.tsv"] == "old b"  # tables first, then release
    with caplog.at_level("WARNING"), RunTransaction(spark, str(out)) as transaction:
        transaction.commit()
    assert "Completing the interrupted commit" in caplog.text
    assert _tree(out) == new
    assert sorted(os.listdir(out)) == ["my_config.json", "release", "tables"]


def test_a_staging_directory_without_journal_is_removed_with_a_log_line(spark, tmp_path, caplog):
    out = tmp_path / "out"
    staging = io.Staging(spark, str(out))
    _stage_files(spark, staging, {"release/a.tsv": "never committed", "tables/x/part": "y" * 5000})
    with caplog.at_level("WARNING"), RunTransaction(spark, str(out)) as transaction:
        transaction.commit()
    assert "Removed the staged outputs of an interrupted run" in caplog.text and "MB" in caplog.text
    assert os.listdir(out) == []


def test_sigterm_during_a_spark_job_stops_the_run_and_removes_what_it_staged(spark, tmp_path):
    out = tmp_path / "out"

    def signal_when_the_job_runs():
        deadline = time.monotonic() + 60
        while not spark.sparkContext.statusTracker().getActiveJobsIds() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)

    started = time.monotonic()
    with _sigterm_ignored(), pytest.raises(RunInterrupted) as info:
        with RunTransaction(spark, str(out)) as transaction:
            io.write_text(spark, transaction.staging.path("release", "a.tsv"), "staged")
            threading.Thread(target=signal_when_the_job_runs, daemon=True).start()
            spark.range(10**13).selectExpr("sum(id % 7)").collect()
            transaction.commit()
    assert info.value.signum == signal.SIGTERM and info.value.exit_status == 143
    assert time.monotonic() - started < 60
    assert os.listdir(out) == []  # no staging, no lock, nothing committed
    assert not spark.sparkContext.statusTracker().getActiveJobsIds()
    assert spark.range(3).count() == 3  # the session still works


def test_sigterm_inside_a_py4j_call_stops_the_driver_when_it_returns(spark, tmp_path):
    out = tmp_path / "out"
    threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM)).start()
    started = time.monotonic()
    with _sigterm_ignored(), pytest.raises(RunInterrupted):
        with RunTransaction(spark, str(out)):
            spark._jvm.java.lang.Thread.sleep(2000)  # not a Spark job: nothing to cancel
            for _ in range(200):  # driver-side work: interrupted as soon as the call has returned
                time.sleep(0.05)
    assert time.monotonic() - started < 8
    assert os.listdir(out) == []
    assert spark.range(2).count() == 2


def test_sigterm_during_the_commit_completes_the_commit_first(spark, tmp_path, monkeypatch):
    out = tmp_path / "out"
    original = io._move
    sent = []

    def move_and_signal(fs, source, target):
        if not sent:
            sent.append(True)
            os.kill(os.getpid(), signal.SIGTERM)
        original(fs, source, target)

    monkeypatch.setattr(io, "_move", move_and_signal)
    with _sigterm_ignored(), pytest.raises(RunInterrupted):
        with RunTransaction(spark, str(out)) as transaction:
            _stage_files(spark, transaction.staging, {"release/a.tsv": "a", "release/b.tsv": "b", "c.json": "c"})
            transaction.commit()
    assert _tree(out) == {"release/a.tsv": "a", "release/b.tsv": "b", "c.json": "c"}
    assert LOCK_NAME not in os.listdir(out)


def test_a_rerun_removes_the_outputs_it_owns_but_did_not_produce_and_keeps_the_others(spark, tmp_path):
    out = tmp_path / "out"
    with RunTransaction(spark, str(out)) as transaction:
        _stage_files(spark, transaction.staging, {"release/a.tsv": "1", "release/b.tsv": "1", "sensitive/c.tsv": "1"})
        transaction.commit()
    with RunTransaction(spark, str(out)) as transaction:  # b moved to sensitive/, c belongs to another stage
        _stage_files(spark, transaction.staging, {"release/a.tsv": "2", "sensitive/b.tsv": "2"})
        transaction.commit(owned=["release/a.tsv", "release/b.tsv", "sensitive/b.tsv", "release/gone.png"])
    assert _tree(out) == {"release/a.tsv": "2", "sensitive/b.tsv": "2", "sensitive/c.tsv": "1"}


def test_a_release_escapes_odd_values_and_keeps_rare_values_out_of_release(spark, tmp_path):
    """Tabs and line breaks in values and headers are escaped in every TSV (the lead escapes
    them at normalisation; the writers escape again), and a value seen once (under k) never
    leaves sensitive/ and tables/; with spreadsheet_safe no cell starts like a formula."""
    rows = [[a, b + "\tx" if i % 2 else b + "\nx", "=" + c if c == "m" else c]
            for i, (a, b, c) in enumerate(good_rows(60))]
    rows.append(["x", MARKER, "m"])
    frame = pd.DataFrame(rows, columns=["a", "b\tcol", "c"])
    frame.to_parquet(tmp_path / "in.parquet", index=False)
    config = {"sensitive_microdata_path": str(tmp_path / "in.parquet"), "input_format": "parquet",
              "output_dir": str(tmp_path / "out"), "table_format": "parquet", "reporting_resolution": 3,
              "reporting_length": 2, "seed": 5, "spreadsheet_safe": True}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    status, out, err = run_cli(["run", str(tmp_path / "config.yaml")])
    assert status == 0, err
    assert MARKER not in out and MARKER not in err
    release = tmp_path / "out" / "release"
    for path in (tmp_path / "out").rglob("*"):
        if path.is_file() and not {"sensitive", "tables"} & set(path.relative_to(tmp_path / "out").parts):
            assert MARKER.encode() not in path.read_bytes(), path
    for path in release.glob("*.tsv"):
        with open(path, newline="") as handle:
            widths = {len(row) for row in csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)}
        assert len(widths) == 1, path
        cells = [cell for line in path.read_text().splitlines() for cell in line.split("\t")]
        assert not [cell for cell in cells if cell[:1] in ("=", "+", "@")], path  # spreadsheet_safe
    microdata = (release / "my_synthetic_microdata.tsv").read_text()
    assert "b<tab>col" in microdata.splitlines()[0]
    assert "<lf>x" in microdata or "<tab>x" in microdata
    assert "'=m" in microdata
    assert sorted(os.listdir(tmp_path / "out")) == ["my_config.json", "release", "sensitive", "tables"]
