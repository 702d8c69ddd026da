"""ksynth-spark: privacy-preserving release of sensitive categorical microdata on Apache Spark.

Stages (one module each): :mod:`load` (spec §1), :mod:`aggregate` (§2), :mod:`dp` (§3),
:mod:`synthesize` (§4), :mod:`evaluate` (§5), :mod:`showcase` (§5.7); :mod:`pipeline`
runs them and commits a release; :mod:`io` owns storage; :mod:`config` the typed settings.
Importing the package never starts Spark.
"""

from ksynth_spark.config import Config, config_from_dict, load_config
from ksynth_spark.errors import ConfigError, InputDataError, KsynthError

__version__ = "0.1.0"
__all__ = ["Config", "config_from_dict", "load_config", "ConfigError", "InputDataError", "KsynthError"]
