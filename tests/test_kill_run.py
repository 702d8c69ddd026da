"""``ksynth run`` as real processes, killed in every stage (issue 14): SIGTERM stops a run like a
failure (exit 143, nothing committed, no staging directory, no lock, no temporary directory);
after SIGKILL the next run removes what was left; a rerun gives the identical release; a second
run on a locked output directory exits 2 at once. The sensitive data has a ``subject_id``
column, so the reference run also checks that subject-id runs work with the CLI's default Spark
settings (adaptive query execution on).

The tests of this module share one output directory and run in file order.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from ksynth_spark.run_state import LOCK_NAME, TEMP_PREFIX
from tests.conftest import REPO

STAGES = ("aggregate", "generate", "evaluate", "showcase")
KILLS = [(stage, sig) for stage in STAGES for sig in (signal.SIGTERM, signal.SIGKILL)]
TRACES = ("Traceback", "at org.apache", "Exception in thread", "Caused by", "py4j")
RESULTS: list[tuple[str, int | None, float]] = []


class Workdir:
    """The shared data, config, output and temporary directories of this module."""

    def __init__(self, root: Path):
        self.root = root
        self.out = root / "out"
        self.tmp = root / "tmp"
        self.tmp.mkdir()
        rng = random.Random(14)
        lines = ["id,a,b,c,d"] + [f"s{i},{rng.choice('xyz')},{rng.choice('uv')},{rng.choice('mno')},{rng.choice('pq')}"
                                  for i in range(80)]
        (root / "data.csv").write_text("\n".join(lines) + "\n")
        (root / "k.yaml").write_text("sensitive_microdata_path: data.csv\nsubject_id: id\nreporting_resolution: 3\n"
                                     "reporting_length: 2\ntable_format: parquet\nseed: 14\nprefix: kill\n"
                                     "output_dir: out\n")
        self.reference: dict | None = None

    def env(self) -> dict[str, str]:
        return {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable,
                "PYTHONPATH": str(REPO), "TMPDIR": str(self.tmp)}

    def start(self, *args: str) -> Process:
        return Process([sys.executable, "-m", "ksynth_spark.cli", "run", str(self.root / "k.yaml"), *args],
                       self.env(), self.root)

    def temp_litter(self) -> list[str]:
        return [name for name in os.listdir(self.tmp) if name.startswith(TEMP_PREFIX)]


class Process:
    """A CLI process whose stderr is read line by line while it runs."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path):
        self.started = time.monotonic()
        self.popen = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                      cwd=cwd)
        self.lines: list[str] = []
        self.stdout: list[str] = []
        self._seen = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._out_reader = threading.Thread(target=lambda: self.stdout.extend(self.popen.stdout), daemon=True)
        self._out_reader.start()

    def _read(self) -> None:
        for line in self.popen.stderr:
            with self._seen:
                self.lines.append(line)
                self._seen.notify_all()

    def wait_for(self, text: str, timeout: float = 300) -> bool:
        """Waits until a stderr line holds ``text`` (False if the process ends first)."""
        deadline = time.monotonic() + timeout
        with self._seen:
            while time.monotonic() < deadline:
                if any(text in line for line in self.lines):
                    return True
                if self.popen.poll() is not None and not self._reader.is_alive():
                    return False
                self._seen.wait(0.1)
        return False

    def finish(self, timeout: float = 300) -> tuple[int, str, str]:
        self.popen.wait(timeout=timeout)
        self.elapsed = time.monotonic() - self.started
        self._reader.join(timeout=10)
        self._out_reader.join(timeout=10)
        return self.popen.returncode, "".join(self.stdout), "".join(self.lines)

    @property
    def seconds(self) -> float:
        """Seconds from the start to the end of the process (or until now while it runs)."""
        return getattr(self, "elapsed", time.monotonic() - self.started)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _strip_volatile(value):
    if isinstance(value, dict):
        return {k: _strip_volatile(v) for k, v in value.items() if k not in ("seconds", "stage_runs")}
    if isinstance(value, list):
        return [_strip_volatile(v) for v in value]
    return value


def snapshot(out: Path) -> dict:
    """Everything a release holds: file bytes (release/, sensitive/), table rows (tables/) and the
    effective config without timings."""
    state = {}
    for area in ("release", "sensitive"):
        for path in sorted((out / area).iterdir()):
            state[f"{area}/{path.name}"] = hashlib.sha256(path.read_bytes()).hexdigest()
    for path in sorted((out / "tables").iterdir()):
        frame = pd.read_parquet(path).astype(str)
        state[f"tables/{path.name}"] = frame.sort_values(list(frame.columns)).to_csv(index=False)
    state["config"] = _strip_volatile(json.loads((out / "kill_config.json").read_text()))
    return state


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    yield Workdir(tmp_path_factory.mktemp("kill"))
    print("\n" + "\n".join(f"{name:40} {str(status):>5} {seconds:6.1f}" for name, status, seconds in RESULTS))


def _clean_state(workdir: Workdir) -> None:
    assert sorted(os.listdir(workdir.out)) == ["kill_config.json", "release", "sensitive", "tables"]
    assert workdir.temp_litter() == []


def test_reference_run_with_subject_ids_and_cli_defaults(workdir):
    status, _, err = (process := workdir.start()).finish()
    RESULTS.append(("reference run", status, process.seconds))
    assert status == 0, err
    assert not any(word in err for word in TRACES), err
    _clean_state(workdir)
    workdir.reference = snapshot(workdir.out)


@pytest.mark.parametrize("stage, signum", KILLS, ids=[f"{s}-{signal.Signals(n).name}" for s, n in KILLS])
def test_killed_in_a_stage(workdir, stage, signum):
    assert workdir.reference is not None, "the reference run failed"
    process = workdir.start("--stage", stage)
    assert process.wait_for(f"[{stage}] started"), "".join(process.lines)
    time.sleep(random.Random(f"{stage}{signum}").uniform(0, 0.3))
    process.popen.send_signal(signum)
    status, _, err = process.finish()
    RESULTS.append((f"{stage} {signal.Signals(signum).name}", status, process.seconds))
    if signum == signal.SIGKILL:
        assert status == -signal.SIGKILL
        return
    assert status == 128 + signal.SIGTERM, err
    assert "Stopped by SIGTERM" in err and "removing its staged outputs" in err
    assert not any(word in err for word in TRACES), err
    assert not (workdir.out / LOCK_NAME).exists()
    assert not [n for n in os.listdir(workdir.out) if n.startswith(".staging")]
    assert workdir.temp_litter() == []
    assert snapshot(workdir.out) == workdir.reference  # nothing was committed


def test_rerun_after_the_kills_gives_the_identical_release_and_refuses_a_concurrent_run(workdir):
    assert workdir.reference is not None, "the reference run failed"
    first = workdir.start()
    deadline = time.monotonic() + 300
    while f'"pid": {first.popen.pid},' not in _read(workdir.out / LOCK_NAME) and first.popen.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.1)
    second = workdir.start()
    second_status, _, second_err = second.finish()
    RESULTS.append(("concurrent second run", second_status, second.seconds))
    status, _, err = first.finish()
    RESULTS.append(("rerun after the kills", status, first.seconds))
    assert status == 0, err
    assert second_status == 2, second_err
    errors = [line for line in second_err.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "Another ksynth run (pid" in errors[0] and "wait for it" in errors[0]
    assert second.seconds < 30  # refused before starting Spark
    _clean_state(workdir)
    assert snapshot(workdir.out) == workdir.reference
