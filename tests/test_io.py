"""The I/O and run-state helpers that need no Spark: TSV cells, the run lock, temporary directories."""

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from ksynth_spark import io
from ksynth_spark.errors import OutputError
from ksynth_spark.run_state import (
    LOCK_NAME,
    TEMP_PREFIX,
    Owner,
    RunLock,
    precheck_output_dir,
    process_alive,
    run_temp_dir,
    sweep_temp_dirs,
)


def test_run_concurrently_runs_every_write_and_reraises_the_first_failure():
    done, threads = [], set()

    def write(name):
        def run():
            threads.add(threading.current_thread().name)
            done.append(name)
        return run

    def broken():
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        io.run_concurrently([write("a"), broken, write("b")])
    assert sorted(done) == ["a", "b"]
    assert all(name.startswith("ksynth-write") for name in threads)


def test_tsv_text_formats_and_escapes_cells():
    assert io.tsv_text(["a", "b"], [(1, None), ("x", 0.5)]) == "a\tb\n1\t\nx\t0.5\n"
    assert io.tsv_text(["a\tb"], [("x\ty\r\nz",)]) == "a<tab>b\nx<tab>y<cr><lf>z\n"


def test_spreadsheet_safe_cells_get_a_quote():
    rows = [("=1+2", "+x", "-y", "@z", "plain", 3)]
    assert io.tsv_text(["=h", "b", "c", "d", "e", "f"], rows, spreadsheet_safe=True) == \
        "'=h\tb\tc\td\te\tf\n'=1+2\t'+x\t'-y\t'@z\tplain\t3\n"
    assert io.tsv_text(["a"], [("=1+2",)]) == "a\n=1+2\n"  # as-is unless asked


def test_a_lock_excludes_a_second_run_and_is_removed_when_released(tmp_path):
    first = RunLock(None, str(tmp_path), "first")
    first.acquire()
    record = json.loads((tmp_path / LOCK_NAME).read_text())
    assert record["pid"] == os.getpid() and record["run_id"] == "first" and record["host"] and record["started"]
    with pytest.raises(OutputError, match=f"Another ksynth run \\(pid {os.getpid()} on host"):
        RunLock(None, str(tmp_path), "second").acquire()
    with pytest.raises(OutputError, match="Another ksynth run"):
        precheck_output_dir(str(tmp_path))
    first.release()
    assert not (tmp_path / LOCK_NAME).exists()
    second = RunLock(None, str(tmp_path), "second")
    second.acquire()
    second.release()


def test_a_lock_of_a_dead_process_is_taken_over(tmp_path, caplog):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    assert not process_alive(pid)
    (tmp_path / LOCK_NAME).write_text(Owner(pid, os.uname().nodename, "2026-01-01T00:00:00Z", "dead").to_json())
    precheck_output_dir(str(tmp_path))  # a stale lock does not block
    lock = RunLock(None, str(tmp_path), "new")
    with caplog.at_level("WARNING", logger="ksynth_spark.run_state"):
        lock.acquire()
    assert f"pid {pid}" in caplog.text and "no longer running" in caplog.text
    assert json.loads((tmp_path / LOCK_NAME).read_text())["run_id"] == "new"
    lock.release()


def test_a_lock_held_by_another_process_blocks_until_it_ends(tmp_path):
    code = ("import sys, time; from ksynth_spark.run_state import RunLock; "
            f"lock = RunLock(None, {str(tmp_path)!r}, 'child'); lock.acquire(); print('held', flush=True); "
            "time.sleep(60)")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "held"
        with pytest.raises(OutputError, match=f"pid {child.pid}"):
            RunLock(None, str(tmp_path), "me").acquire()
    finally:
        child.kill()
        child.wait()
    lock = RunLock(None, str(tmp_path), "me")  # killed: the kernel released its lock
    lock.acquire()
    lock.release()


def test_output_dir_checks_before_spark(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="is a file, not a directory"):
        precheck_output_dir(str(tmp_path / "file"))
    with pytest.raises(OutputError, match="is a file, not a directory"):
        precheck_output_dir(str(tmp_path / "file" / "out"))
    precheck_output_dir(str(tmp_path / "new" / "out"))
    assert not (tmp_path / "new").exists()  # the pre-check creates nothing


def test_run_temp_dir_points_child_processes_there_and_is_removed(tmp_path, monkeypatch):
    monkeypatch.delenv("SPARK_SUBMIT_OPTS", raising=False)
    with run_temp_dir(str(tmp_path)) as path:
        assert os.path.basename(path).startswith(TEMP_PREFIX)
        assert os.environ["TMPDIR"].startswith(path)
        assert f"-Djava.io.tmpdir={path}" in os.environ["SPARK_SUBMIT_OPTS"]
    assert not os.path.exists(path)
    assert "SPARK_SUBMIT_OPTS" not in os.environ


def test_temp_dirs_of_dead_runs_are_swept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f"{TEMP_PREFIX}{dead.stdout.strip()}-abc"
    live = tmp_path / f"{TEMP_PREFIX}{os.getpid()}-def"
    for path, pid in ((stale, int(dead.stdout)), (live, os.getpid())):
        (path / "tmp").mkdir(parents=True)
        (path / "owner.json").write_text(Owner(pid, os.uname().nodename, "t", path.name,
                                               None if path is stale else Owner.me("x").process_start).to_json())
    assert sweep_temp_dirs(str(tmp_path)) == 1
    assert not stale.exists() and live.exists()


def test_process_alive_detects_pid_reuse():
    me = Owner.me("x")
    assert process_alive(me.pid, me.process_start)
    if me.process_start is not None:
        assert not process_alive(me.pid, me.process_start + 1)
    assert not process_alive(-1)
    time.sleep(0)
