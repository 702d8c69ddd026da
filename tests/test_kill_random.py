"""Acceptance of issue 14 on german_credit (slow: run with KSYNTH_SLOW_TESTS=1): five SIGKILLs at
random points of ``ksynth run``, then one clean run; the output folder then holds exactly one
release (release/, sensitive/, tables/, the effective config) and nothing else, and no
temporary directory of a run is left."""

from __future__ import annotations

import os
import random
import signal
import time

import pytest

from tests.conftest import REPO
from tests.test_kill_run import Workdir

pytestmark = pytest.mark.skipif(not os.environ.get("KSYNTH_SLOW_TESTS"), reason="slow: set KSYNTH_SLOW_TESTS=1")


def test_five_random_sigkills_then_one_clean_run_leave_one_release(tmp_path):
    work = Workdir(tmp_path)
    (tmp_path / "k.yaml").write_text(f"sensitive_microdata_path: {REPO / 'data' / 'german_credit.csv'}\n"
                                      "reporting_length: 3\nreporting_resolution: 10\nseed: 1994\n"
                                      "prefix: german_credit\noutput_dir: out\n")
    rng = random.Random(int(os.environ.get("KSYNTH_KILL_SEED", "14")))
    window = float(os.environ.get("KSYNTH_KILL_WINDOW", "110"))  # seconds after the session starts
    log = []
    while len([entry for entry in log if entry[2] == -signal.SIGKILL]) < 5:
        process = work.start()
        assert process.wait_for("Starting a Spark session")
        delay = rng.uniform(2, window)
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline and process.popen.poll() is None:
            time.sleep(0.2)
        stage = [line.split("] ")[0].split("[")[-1] for line in process.lines if "] started" in line]
        process.popen.send_signal(signal.SIGKILL)
        status, _, _ = process.finish()
        log.append((round(delay, 1), stage[-1] if stage else "start-up", status))
        if status != -signal.SIGKILL:  # the run ended before the kill: kill earlier
            window = max(5.0, window * 0.7)
        assert len(log) < 15
    status, _, err = (clean := work.start()).finish(timeout=1800)
    print("\nkills (seconds after the session started, stage, exit):", log, f"clean run: {status} in "
          f"{clean.seconds:.0f} s")
    assert status == 0, err
    assert sorted(os.listdir(work.out)) == ["german_credit_config.json", "release", "sensitive", "tables"]
    assert work.temp_litter() == []
