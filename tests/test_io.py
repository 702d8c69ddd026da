"""The I/O layer's helpers that need no Spark."""

import threading

import pytest

from ksynth_spark import io


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


def test_tsv_text_formats_cells():
    assert io.tsv_text(["a", "b"], [(1, None), ("x", 0.5)]) == "a\tb\n1\t\nx\t0.5\n"
