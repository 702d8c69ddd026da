"""ksynth-spark: privacy-preserving release of sensitive categorical microdata on Apache Spark.

The Python API: :func:`release` (a DataFrame and options in, a :class:`Release` out) and
:func:`run` (a config in). The stages live in their own modules and packages — ``load``,
``aggregate``, ``dp/``, ``synthesis/``, ``verify``, ``evaluate``, ``report/`` — and
``pipeline`` runs them and commits a release. Importing the package never starts Spark.
"""

from ksynth_spark.api import Release, release, run
from ksynth_spark.config import Config, config_from_dict, load_config
from ksynth_spark.errors import ConfigError, InputDataError, KsynthError, OutputError

__version__ = "0.1.0"
__all__ = ["Config", "ConfigError", "InputDataError", "KsynthError", "OutputError", "Release", "config_from_dict",
           "load_config", "release", "run", "__version__"]
