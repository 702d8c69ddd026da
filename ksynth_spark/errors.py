"""Error types that ksynth-spark raises for problems a user can fix: one class per kind of failure.

Every message names the problem and the fix in one line. Messages may name files, columns,
line numbers and configuration keys, but never a value read from the sensitive data. The CLI
prints these without a traceback and exits with status 2; anything else is a bug (status 1).
"""


class KsynthError(Exception):
    """Base class of all errors a user can act on."""


class ConfigError(KsynthError):
    """The configuration or a command-line option is invalid: unknown key, wrong type or
    out-of-range value."""


class InputDataError(KsynthError):
    """The sensitive (or audited synthetic) input cannot be used as it is: missing, empty,
    malformed, conflicting, or of another format than declared."""


class OutputError(KsynthError):
    """The output location cannot be used: not a directory, not writable, overlapping the
    input, a missing catalog schema, or another run holding it."""


class SparkSetupError(KsynthError):
    """The Spark session could not be created or configured as requested."""


class PrivacyCheckError(KsynthError):
    """A release failed a privacy check (the k check, the DP budget check) and was not committed."""
