"""Error types that ksynth-spark raises for problems a user can fix.

Every message names the problem and the fix. Messages may name files, columns and
configuration keys, but never a value read from the sensitive data.
"""


class KsynthError(Exception):
    """Base class of all errors a user can act on (the CLI prints them without a traceback)."""


class ConfigError(KsynthError):
    """The configuration is invalid: unknown key, wrong type or out-of-range value."""


class InputDataError(KsynthError):
    """The sensitive input cannot be used as it is (missing, empty, malformed, conflicting)."""


class SparkSetupError(KsynthError):
    """The Spark session could not be created or configured as requested."""


class PrivacyCheckError(KsynthError):
    """An output failed an independent privacy check; the release was not committed."""
