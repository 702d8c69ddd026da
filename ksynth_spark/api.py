"""The Python API: a DataFrame and keyword options in, a release out (for notebooks and scripts).

::

    import ksynth_spark as ks
    result = ks.release(people, k=10, reporting_length=3, seed=1)   # Spark or pandas DataFrame, or a path
    result.synthetic_microdata.show()                             # Spark DataFrame, one row per record
    statement = result.privacy_statement                          # what this run guarantees, in plain words
    result.write("output/people")                                 # the same release folder as the CLI

:func:`release` runs the same pipeline as ``ksynth run`` (every stage, or those named); the
CLI and the notebooks call :func:`run`. A release computed without ``output_dir`` lives in a
temporary folder until :meth:`Release.write` moves it into place (or the object is discarded).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import uuid
import weakref
from dataclasses import replace
from typing import Any

from ksynth_spark.config import Config, config_from_dict, load_config
from ksynth_spark.report.privacy import ReleaseFacts, privacy_statement

logger = logging.getLogger(__name__)

#: Keyword options of :func:`release` and the config keys they set.
_ALIASES = {"k": "reporting_resolution", "mode": "synthesis_mode", "dp": "dp_aggregates", "epsilon": "noise_epsilon"}


def run(config: Config, stages: tuple[str, ...] | None = None, spark=None) -> Release:
    """Runs the pipeline for a validated config (what ``ksynth run`` does) and returns the release.

    Args:
        config: The effective configuration.
        stages: Stages to run (default: every stage), always in pipeline order.
        spark: The session to use (default: the active one, or a new local one).
    """
    from ksynth_spark.pipeline import STAGES, run_stages
    from ksynth_spark.session import get_session

    spark = spark or get_session(config)
    return Release(run_stages(spark, config, tuple(stages or STAGES)))


def release(data: Any, *, config: str | Config | None = None, output_dir: str | None = None,
            stages: tuple[str, ...] | None = None, spark=None, **options: Any) -> Release:
    """Releases a sensitive table: protected aggregates, k-synthetic (or DP-derived) microdata,
    evaluation and showcase page.

    Args:
        data: A Spark DataFrame, a pandas DataFrame (every cell read as a string; missing cells
            are empty), or the path of a CSV/Parquet/Delta file (then ``input_format`` and the
            delimiter come from ``options`` or ``config``).
        config: A YAML config path or a :class:`Config` whose keys are used as defaults.
        output_dir: Where the release folder is written; default: a temporary folder kept until
            :meth:`Release.write` is called or the object is discarded.
        stages: Stages to run (default: every stage).
        spark: The session (default: the active one, or a new local one).
        **options: Any configuration key (see the README's configuration table), plus the short
            names ``k`` (reporting_resolution), ``mode`` (synthesis_mode), ``dp``
            (dp_aggregates) and ``epsilon`` (noise_epsilon).

    Returns:
        The :class:`Release`.

    Raises:
        ConfigError: For an unknown option or an invalid value (one message naming it).
        KsynthError: For unusable input data.
    """
    keys = {_ALIASES.get(key, key): value for key, value in options.items()}
    if isinstance(config, str):
        base = load_config(config, keys).to_dict()
    elif isinstance(config, Config):
        base = {**config.to_dict(), **keys}
    else:
        base = dict(keys)
    temporary = None
    if output_dir is None:
        temporary = tempfile.mkdtemp(prefix="ksynth-release-")
        output_dir = temporary
    base["output_dir"] = os.path.abspath(output_dir) if "://" not in output_dir else output_dir
    view = None
    if isinstance(data, str):
        base["sensitive_microdata_path"] = data
    else:
        view = f"ksynth_input_{uuid.uuid4().hex[:12]}"
        base.update(sensitive_microdata_path=view, input_format="table")
    effective = config_from_dict(base)
    from ksynth_spark.session import get_session

    spark = spark or get_session(effective)
    if view is not None:
        _as_spark(spark, data).createOrReplaceTempView(view)
    try:
        result = run(effective, stages, spark)
    finally:
        if view is not None:
            spark.catalog.dropTempView(view)
    if temporary is not None:
        result._own(temporary)
    return result


def _as_spark(spark, data):
    """A Spark DataFrame of strings from a Spark or pandas DataFrame."""
    if hasattr(data, "createOrReplaceTempView"):
        return data
    import pandas as pd

    if not isinstance(data, pd.DataFrame):
        from ksynth_spark.errors import InputDataError

        raise InputDataError(f"release() takes a Spark DataFrame, a pandas DataFrame or a path, not "
                             f"{type(data).__name__}; convert the data first.")
    frame = data.astype(object).where(data.notna(), "").astype(str)
    frame.columns = [str(c) for c in frame.columns]
    schema = ", ".join(f"`{c.replace('`', '')}` string" for c in frame.columns)
    return spark.createDataFrame(frame, schema)


class Release:
    """A committed release and what its stages computed.

    Attributes:
        config: The effective configuration (with the seed used).
        output_dir: The folder holding the release (a temporary one until :meth:`write`).
        derived: What the stages recorded (the ``derived`` part of ``<prefix>_config.json``).
        verification: The independent k check's report (``{}`` when not applicable).
    """

    def __init__(self, run):
        self._run = run
        self.config: Config = run.config
        self.output_dir: str = run.config.output_dir
        self._committed = run.committed
        previous = run.committed.derived if run.committed is not None else {}
        self.derived: dict = {**previous, **run.derived}
        self.verification: dict = run.verification if run.verification is not None else \
            dict(self.derived.get("verification") or {})
        self._cleanup = None

    def _own(self, directory: str) -> None:
        self._cleanup = weakref.finalize(self, shutil.rmtree, directory, True)

    def _table(self, name: str):
        from ksynth_spark.committed import Committed

        return Committed(self._run.spark, self.config).table(name)

    @property
    def synthetic_microdata(self):
        """The synthetic microdata: a Spark DataFrame, ``syn_id`` and one string column per header."""
        return self._table("synthetic_microdata").orderBy("syn_id")

    @property
    def reportable_aggregates(self):
        """The published aggregates: a Spark DataFrame ``selections, length, protected_count``
        (k-anonymous: counts rounded down to multiples of k; DP: noisy counts)."""
        return self._table("reportable_aggregates").select("selections", "length", "protected_count")

    @property
    def evaluation(self) -> dict:
        """The headline evaluation figures (``{}`` when the evaluate stage did not run)."""
        return dict((self.derived.get("evaluation") or {}).get("headline") or {})

    @property
    def synthetic_record_count(self) -> int:
        """Number of synthetic records (0 when the generate stage has not run)."""
        return int((self.derived.get("synthesis") or {}).get("records_out", 0))

    @property
    def expansion_ratio(self) -> float:
        """Synthetic records per published sensitive record."""
        published = self.derived.get("published_record_count") or self.derived.get("n_records") or 0
        return self.synthetic_record_count / published if published else 0.0

    @property
    def facts(self) -> ReleaseFacts:
        """What this release did (mode, k, reporting length, DP budget, checks)."""
        return ReleaseFacts.from_run(self.config, self.derived)

    @property
    def privacy_statement(self) -> str:
        """The privacy statement that is true of this release, in plain words."""
        return privacy_statement(self.facts).text()

    def write(self, output_dir: str) -> Release:
        """Moves (a temporary release) or copies the release folder to ``output_dir`` and
        returns this release pointing there. Files are placed only once they are all copied."""
        target = os.path.abspath(output_dir)
        if os.path.abspath(self.output_dir) == target:
            return self
        staging = f"{target}.ksynth-copy-{uuid.uuid4().hex[:8]}"
        shutil.copytree(self.output_dir, staging, ignore=shutil.ignore_patterns(".staging-*", "*.lock"))
        os.makedirs(target, exist_ok=True)
        for name in sorted(os.listdir(staging)):
            destination = os.path.join(target, name)
            if os.path.isdir(destination):
                shutil.rmtree(destination)
            elif os.path.exists(destination):
                os.remove(destination)
            os.replace(os.path.join(staging, name), destination)
        shutil.rmtree(staging, ignore_errors=True)
        if self._cleanup is not None:
            self._cleanup()
            self._cleanup = None
        self.output_dir = target
        self.config = replace(self.config, output_dir=target)
        logger.info("Release written to %s", target)
        return self
