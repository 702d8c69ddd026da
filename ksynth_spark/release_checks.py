"""Checks that a release is worth committing: enough records for k, something to publish, and
showcase columns that exist. Pure functions over counts and names, called by the pipeline.

Decision (issue 14): a release with nothing reportable is an error, not a warning. With
``k`` larger than the number of records every combination is suppressed, the protected record
count is 0 and the synthetic data is empty; a run that would commit such a release stops
instead (exit 2) and says why, so that an empty release is never published by mistake and
never replaces a useful one. The check of ``k`` against N runs right after the load, before
any counting; the emptiness checks run after the stage that produces the outputs.
"""

from __future__ import annotations

from ksynth_spark.config import Config
from ksynth_spark.errors import ConfigError


def require_enough_records(config: Config, n_records: int) -> None:
    """Refuses ``k`` > N (k-anonymous releases; DP releases have no k).

    Raises:
        ConfigError: Fewer records than ``reporting_resolution``.
    """
    if not config.dp_aggregates and n_records < config.k:
        raise ConfigError(
            f"reporting_resolution k = {config.k} is larger than the number of records ({n_records}): every "
            "combination would be suppressed and the release would be empty. Lower reporting_resolution "
            f"(at most {n_records}) or release more records.")


def require_reportable(config: Config, n_reportable: int) -> None:
    """Refuses a release without any reportable combination.

    Raises:
        ConfigError: The reportable aggregates are empty.
    """
    if n_reportable > 0:
        return
    if config.dp_aggregates:
        raise ConfigError("The differentially private aggregates are empty (every count fell under the noise "
                          "threshold): nothing can be released. Raise noise_epsilon, lower the "
                          "noise_threshold_values, or release more records.")
    raise ConfigError(f"No attribute value occurs in at least k = {config.k} records: nothing can be released. "
                      "Lower reporting_resolution, or merge rare values into broader categories.")


def require_synthetic_records(config: Config, n_synthetic: int) -> None:
    """Refuses a release whose synthetic microdata is empty.

    Raises:
        ConfigError: The synthesis produced no record.
    """
    if n_synthetic <= 0:
        raise ConfigError(f"The synthesis produced no records at k = {config.k}: nothing can be released. Lower "
                          "reporting_resolution, or merge rare values into broader categories.")


def check_report_columns(config: Config, headers: list[str]) -> None:
    """Checks the column names of ``report_pages`` and ``report_visuals`` against the released
    headers before the showcase is built (the names shown are the configured ones).

    Raises:
        ConfigError: An unknown column, a column on two pages or in two visuals, or an empty visual.
    """
    known = set(headers)
    for key, groups in (("report_visuals", config.report_visuals), ("report_pages", config.report_pages)):
        placed: dict[str, str] = {}
        for group, names in groups.items():
            if key == "report_visuals" and not names:
                raise ConfigError(f"Invalid value for 'report_visuals': entry '{group}' lists no columns.")
            for name in names:
                if name not in known:
                    raise ConfigError(
                        f"Invalid value for '{key}': '{group}' names column '{name}', which is not a column of the "
                        f"release ({len(headers)} columns; names are case-sensitive, as in the synthetic microdata "
                        "header). Fix or remove it.")
                if name in placed:
                    raise ConfigError(f"Invalid value for '{key}': column '{name}' is in both '{placed[name]}' and "
                                      f"'{group}'. List each column once.")
                placed[name] = group
