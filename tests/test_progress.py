"""Progress lines of long stages (ksynth_spark.progress): rate and ETA arithmetic without Spark,
then one slow Spark job run under the stage timer the pipeline uses."""

import itertools
import logging
import re
import time

from ksynth_spark.progress import ETA_MIN_FRACTION, Estimate, RateTracker, TaskCount, progress_line


def _stage(done: int, total: int = 100, stage_id: int = 7) -> list[TaskCount]:
    return [TaskCount(("stage", stage_id, 0), done, total)]


def test_eta_is_unknown_before_a_fifth_of_the_tasks_and_then_follows_the_completion_rate():
    tracker = RateTracker()
    assert tracker.update(_stage(0), 0.0) == Estimate(0, 100, None, None)
    early = tracker.update(_stage(10), 5.0)  # 2 tasks/s, but only 10 % done
    assert early.rate == 2.0 and early.eta is None
    assert "ETA unknown" in progress_line("generate", 5.0, early)
    later = tracker.update(_stage(30), 15.0)  # still 2 tasks/s: 70 tasks left
    assert later.done >= ETA_MIN_FRACTION * later.total and later.eta == 35.0
    expected = "[generate] 15 s: 30/100 Spark tasks done (30 %), 2.0 tasks/s, ETA 35 s"
    assert progress_line("generate", 15.0, later) == expected


def test_eta_just_before_the_end_is_small_not_the_time_already_spent():
    tracker = RateTracker()
    tracker.update(_stage(0, 1000), 0.0)
    last = tracker.update(_stage(999, 1000), 249.8)
    assert last.eta is not None and last.eta < 1.0
    assert "ETA 0 s" in progress_line("evaluate", 249.8, last)


def test_the_rate_is_measured_from_when_a_stage_was_first_seen_and_stages_add_up():
    tracker = RateTracker()
    tracker.update(_stage(40, 100, stage_id=1), 10.0)  # already 40 % done when first seen
    assert tracker.update(_stage(40, 100, stage_id=1), 12.0).rate is None  # nothing completed since
    both = tracker.update(_stage(60, 100, stage_id=1) + _stage(0, 50, stage_id=2), 20.0)
    assert both.rate == 2.0 and (both.done, both.total) == (60, 150)
    both = tracker.update(_stage(80, 100, stage_id=1) + _stage(10, 50, stage_id=2), 30.0)
    assert both.rate == 2.0 + 1.0 and both.eta == (150 - 90) / 3.0
    assert tracker.update([], 31.0) is None  # nothing runs: the driver works
    assert progress_line("evaluate", 31.0, None) == "[evaluate] 31 s: working on the driver (no Spark task running)"
    assert progress_line("generate", 200.0, Estimate(5, 10, 0.01, 500.0)).endswith("0.01 tasks/s, ETA 8 min")


def _eta_seconds(message: str) -> float | None:
    found = re.search(r"ETA (\d+(?:\.\d+)?) (s|min|h)\b", message)
    if not found:
        return None
    return float(found.group(1)) * {"s": 1, "min": 60, "h": 3600}[found.group(2)]


def test_a_slow_spark_stage_logs_progress_at_least_every_10_s_with_an_honest_eta(spark):
    """32 tasks of 2 s on local[2]: sixteen waves, over 30 s of Spark work under a StageTimer."""
    from ksynth_spark.pipeline import StageTimer

    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = records.append
    watched = logging.getLogger("ksynth_spark")
    old_level = watched.level
    watched.addHandler(handler)
    watched.setLevel(logging.INFO)

    def slow(value):
        import time as clock

        clock.sleep(2.0)
        return value

    spark.sparkContext.parallelize(range(2), 2).map(abs).count()  # Python workers started
    try:
        started = time.time()
        with StageTimer("slow"):
            assert spark.sparkContext.parallelize(range(32), 32).map(slow).count() == 32
        ended = time.time()
    finally:
        watched.removeHandler(handler)
        watched.setLevel(old_level)
    assert ended - started > 30
    lines = [r for r in records if r.name == "ksynth_spark.progress"]
    assert lines, [r.getMessage() for r in records]
    stamps = [started] + [r.created for r in lines] + [ended]
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert max(gaps) <= 10.0, (gaps, [r.getMessage() for r in lines])
    assert all(r.getMessage().startswith("[slow] ") and "/32 Spark tasks done" in r.getMessage() for r in lines)
    checked = 0
    for record in lines:
        eta = _eta_seconds(record.getMessage())
        done = int(re.search(r"(\d+)/32 Spark tasks", record.getMessage()).group(1))
        if done < ETA_MIN_FRACTION * 32:
            assert eta is None and "ETA unknown" in record.getMessage()
            continue
        assert eta is not None, record.getMessage()
        remaining = ended - record.created
        # right within a factor of 2 (plus the 1 s polling step and the job's end overhead)
        assert remaining / 2 - 3 <= eta <= 2 * remaining + 3, (record.getMessage(), remaining)
        checked += 1
    assert checked >= 2
