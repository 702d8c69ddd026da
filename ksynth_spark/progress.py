"""Progress lines for long stages: a driver-side thread that logs what Spark is doing.

``with progress(spark, "generate"):`` wraps a stage. While any such block is open, one daemon
thread polls Spark's status tracker every second (the running Spark stages: tasks completed and
in total) and, every ``interval`` seconds (8 by default, so never more than 10 s of silence),
logs one line for the innermost open block::

    [generate] 47 s: 37/64 Spark tasks done (58 %), 2.1 tasks/s, ETA 13 s
    [generate] 12 s: 3/64 Spark tasks done (5 %), ETA unknown
    [evaluate] 35 s: working on the driver (no Spark task running)

The ETA is for the Spark tasks running at that moment (a stage may start more Spark jobs
afterwards): the work left (tasks not started, plus half of each running task) divided by the
rate at which those stages completed tasks over the last minute they were watched. It is
printed once 20 % of their tasks are done ("ETA unknown" before), when it is right within a
factor of two for tasks of similar size. Driver-side loops can report their own counts with
:func:`report`; they are shown while no Spark task runs. Lines hold counts and timings only,
never a data value. This module does not import pyspark: it is handed the session (or its
SparkContext), or None for work before a session exists (the start of the session itself).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

#: Seconds between two progress lines of a running stage.
DEFAULT_INTERVAL = 8.0
#: Seconds between two polls of Spark's status tracker.
POLL_SECONDS = 1.0
#: Share of the tasks that must be done before an ETA is printed.
ETA_MIN_FRACTION = 0.2
#: Seconds of history the completion rate is measured over (older samples are dropped, so a
#: slow start, e.g. Python workers starting, stops weighing on the ETA).
RATE_WINDOW = 60.0


@dataclass(frozen=True)
class TaskCount:
    """Progress of one unit of work at one moment.

    Attributes:
        key: Identity of the unit (a Spark stage attempt, or a driver-side counter).
        done: Tasks (or items) completed.
        total: Tasks (or items) in all.
        active: Tasks running now (each counted as half done in the ETA).
    """

    key: tuple
    done: int
    total: int
    active: int = 0


@dataclass(frozen=True)
class Estimate:
    """Done/total, rate and ETA over the units running at one moment.

    Attributes:
        done: Completed tasks of the running units.
        total: All tasks of the running units.
        rate: Tasks completed per second while the units were watched; None until one completed.
        eta: Seconds until the running units are done; None before :data:`ETA_MIN_FRACTION`
            of their tasks are done or while the rate is unknown.
    """

    done: int
    total: int
    rate: float | None
    eta: float | None


class RateTracker:
    """Turns successive snapshots of running units into rate and ETA estimates.

    Each unit's rate is measured over its samples of the last :data:`RATE_WINDOW` seconds (from
    the moment it was first seen, when that is more recent); the rates of units running side by
    side add up. Units that are no longer running are forgotten.
    """

    def __init__(self) -> None:
        self._samples: dict[tuple, deque[tuple[float, int]]] = {}

    def update(self, counts: list[TaskCount], now: float) -> Estimate | None:
        """Records a snapshot taken at ``now`` (seconds) and returns the estimate, or None when
        nothing runs."""
        self._samples = {c.key: self._samples.get(c.key) or deque() for c in counts}
        if not counts:
            return None
        rate, measured = 0.0, False
        for count in counts:
            samples = self._samples[count.key]
            samples.append((now, count.done))
            while len(samples) > 2 and samples[1][0] <= now - RATE_WINDOW:
                samples.popleft()
            since, done_then = samples[0]
            if now > since and count.done > done_then:
                rate += (count.done - done_then) / (now - since)
                measured = True
        done = sum(c.done for c in counts)
        total = sum(c.total for c in counts)
        if not measured:
            return Estimate(done, total, None, None)
        left = sum(max(c.total - c.done - c.active / 2, 0.0) for c in counts)
        eta = left / rate if total and done >= ETA_MIN_FRACTION * total else None
        return Estimate(done, total, rate, eta)


#: What a progress line says while no Spark task runs.
DRIVER_WORK = "working on the driver (no Spark task running)"


def progress_line(label: str, elapsed: float, estimate: Estimate | None, unit: str = "Spark tasks",
                  idle: str = DRIVER_WORK) -> str:
    """The text of one progress line (counts and timings only); ``idle`` when nothing runs."""
    head = f"[{label}] {elapsed:.0f} s: "
    if estimate is None:
        return head + idle
    text = f"{estimate.done}/{estimate.total} {unit} done"
    if estimate.total:
        text += f" ({100 * estimate.done / estimate.total:.0f} %)"
    if estimate.rate is not None:
        text += f", {_rate_text(estimate.rate)} {unit.split()[-1]}/s"
    text += f", ETA {_duration_text(estimate.eta)}" if estimate.eta is not None else ", ETA unknown"
    return head + text


def _rate_text(rate: float) -> str:
    return f"{rate:.1f}" if rate >= 0.95 else f"{rate:.2f}"


def _duration_text(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def spark_task_counts(context: Any) -> list[TaskCount]:
    """The running Spark stages of ``context`` (a SparkContext) as task counts."""
    tracker = context.statusTracker()
    counts = []
    for stage_id in tracker.getActiveStageIds():
        info = tracker.getStageInfo(stage_id)
        if info is not None and info.numTasks > 0:
            counts.append(TaskCount(("stage", stage_id, info.currentAttemptId), info.numCompletedTasks, info.numTasks,
                                    info.numActiveTasks))
    return counts


@dataclass
class _Block:
    """One open ``progress`` block."""

    label: str
    context: Any
    started: float
    idle: str = DRIVER_WORK
    driver: TaskCount | None = None
    driver_unit: str = "items"
    tracker: RateTracker = field(default_factory=RateTracker)


class _Reporter:
    """The one polling thread of this process, reporting on the innermost open block."""

    def __init__(self, interval: float, poll: float, clock: Callable[[], float]) -> None:
        self.interval, self.poll, self.clock = interval, poll, clock
        self.blocks: list[_Block] = []
        self.lock = threading.Lock()
        self.wake = threading.Condition(self.lock)
        self.last_line = clock()
        self.thread: threading.Thread | None = None

    def open(self, block: _Block) -> None:
        with self.lock:
            self.blocks.append(block)
            self.last_line = block.started
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._run, name="ksynth-progress", daemon=True)
                self.thread.start()
            self.wake.notify_all()

    def close(self, block: _Block) -> None:
        with self.lock:
            if block in self.blocks:
                self.blocks.remove(block)
            self.last_line = self.clock()  # the block's end is logged by its caller
            self.wake.notify_all()

    def _run(self) -> None:
        while True:
            with self.lock:
                while not self.blocks:
                    self.wake.wait()
                block = self.blocks[-1]
            try:
                self.tick(block)
            except Exception as exc:  # never let progress reporting break a run
                logger.debug("progress: status not available (%s)", type(exc).__name__)
            with self.lock:  # wake up in time for the next line, even if polling was slow
                due = self.last_line + self.interval - self.clock()
            time.sleep(min(self.poll, max(due, 0.05)))

    def tick(self, block: _Block) -> str | None:
        """Polls Spark once for ``block`` and logs a line when one is due; returns it."""
        counts = spark_task_counts(block.context) if block.context is not None else []
        unit = "Spark tasks"
        if not counts and block.driver is not None:
            counts, unit = [block.driver], block.driver_unit
        now = self.clock()
        estimate = block.tracker.update(counts, now)
        with self.lock:
            if not self.blocks or self.blocks[-1] is not block or now - self.last_line < self.interval:
                return None
            self.last_line = now
        line = progress_line(block.label, now - block.started, estimate, unit, block.idle)
        logger.info("%s", line)
        return line


_reporter: _Reporter | None = None
_reporter_lock = threading.Lock()


def _the_reporter(interval: float) -> _Reporter:
    global _reporter
    with _reporter_lock:
        if _reporter is None:
            _reporter = _Reporter(interval, POLL_SECONDS, time.monotonic)
        _reporter.interval = interval
        return _reporter


@contextmanager
def progress(spark: Any, label: str, *, interval: float = DEFAULT_INTERVAL, idle: str = DRIVER_WORK) -> Iterator[None]:
    """Logs a progress line for ``label`` every ``interval`` seconds while the block runs.

    Args:
        spark: The SparkSession (or its SparkContext) whose jobs run in the block; None reports
            elapsed time only.
        label: Stage name shown in the lines (``[label] ...``).
        interval: Seconds between lines (the first comes ``interval`` seconds after the start).
        idle: What the lines say while no Spark task runs.

    Yields:
        Nothing; nested blocks report for the innermost one.
    """
    context = getattr(spark, "sparkContext", spark)
    reporter = _the_reporter(interval)
    block = _Block(label, context, reporter.clock(), idle)
    reporter.open(block)
    try:
        yield
    finally:
        reporter.close(block)


def report(done: int, total: int, unit: str = "items") -> None:
    """Driver-side progress of the innermost open block (e.g. records built so far), shown in
    its lines while no Spark task runs. A no-op outside a ``progress`` block."""
    reporter = _reporter
    if reporter is None:
        return
    with reporter.lock:
        if reporter.blocks:
            block = reporter.blocks[-1]
            block.driver = TaskCount(("driver", block.label, unit), int(done), int(total))
            block.driver_unit = unit
