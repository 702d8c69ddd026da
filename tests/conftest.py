"""Shared test fixtures: ONE local Spark session (with Delta) for the whole test run."""

import os
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data"

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)


@pytest.fixture(scope="session")
def spark():
    """A local[2] SparkSession with Delta, shared by every Spark test."""
    from ksynth_spark.config import Config, SparkSettings
    from ksynth_spark.session import get_session

    config = Config(sensitive_microdata_path="unused",
                    spark=SparkSettings(master="local[2]", app_name="ksynth-tests",
                                        conf={"spark.sql.shuffle.partitions": "4",
                                              "spark.sql.warehouse.dir": tempfile.mkdtemp(prefix="ksynth-warehouse-")}))
    session = get_session(config)
    yield session
    session.stop()
