"""Error types of ksynth-spark: one class per kind of failure a user can fix, and the interruption.

Every message names the problem and the fix in one line. Messages may name files, columns,
line numbers, field counts and configuration keys, but never a value read from the sensitive
data (nor a header name read from a file: without a header line it would be a record). The CLI
prints these without a traceback and exits with status 2; anything else is a bug (status 1).
A run stopped by SIGTERM or SIGINT raises :class:`RunInterrupted` (status 128 + signal number).
"""


class KsynthError(Exception):
    """Base class of all errors a user can act on."""


class ConfigError(KsynthError):
    """The configuration or a command-line option is invalid: unknown key, wrong type or
    out-of-range value (including a value that does not suit the data, such as k > N)."""


class InputDataError(KsynthError):
    """The sensitive (or audited synthetic) input cannot be used as it is: missing, empty,
    malformed, conflicting, or of another format or encoding than declared."""


class OutputError(KsynthError):
    """The output location cannot be used: not a directory, not writable, overlapping the
    input, a missing catalog schema, or another run holding it."""


class SparkSetupError(KsynthError):
    """The Spark session could not be created or configured as requested."""


class PrivacyCheckError(KsynthError):
    """A release failed a privacy check (the k check, the DP budget check) and was not committed."""


class RunInterrupted(KeyboardInterrupt):
    """The run was stopped by a signal (SIGTERM or SIGINT); its staged outputs were removed.

    A ``KeyboardInterrupt`` so that code catching ``Exception`` does not swallow it and py4j
    closes a connection it interrupts cleanly.

    Attributes:
        signum: The signal number.
    """

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_status(self) -> int:
        """The conventional exit status of a process stopped by the signal: 128 + its number."""
        return 128 + self.signum
