"""Typed configuration: the one model of a release's settings, and the only place that validates them.

Key names follow the reference pipeline, so its configs mostly work unchanged. Unknown keys,
wrong types and out-of-range values raise :class:`ConfigError` naming the key and the fix.
Relative paths (without a URI scheme) are resolved against the directory of the YAML file.
A :class:`Config` is frozen and valid from the moment it exists (it validates itself when
built), and its ``seed`` is always set: a config without one draws a fresh seed when it is
built, which the effective config records.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import logging
import os
import re
import secrets
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, Union

import yaml

from ksynth_spark.errors import ConfigError

logger = logging.getLogger(__name__)

SynthesisMode = Literal["row_seeded", "unseeded", "value_seeded", "aggregate_seeded"]
#: The synthesis modes of spec §4, in documentation order.
SYNTHESIS_MODES: tuple[str, ...] = typing.get_args(SynthesisMode)
DEFAULT_DELTA_PACKAGE = "io.delta:delta-spark_4.2_2.13:4.4.0"
#: Characters a ``prefix`` may hold (it becomes part of file and table names).
_PREFIX_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class SparkSettings:
    """The ``spark:`` section: where to run and extra ``spark.*`` settings.

    Attributes:
        master: Spark master URL used only when no session is active (default ``local[*]``).
        app_name: Application name shown in the Spark UI.
        delta_package: Maven coordinate of the Delta Lake jar fetched at session start.
        conf: Extra Spark settings; every key must start with ``spark.``.
    """

    master: str | None = None
    app_name: str = "ksynth-spark"
    delta_package: str = DEFAULT_DELTA_PACKAGE
    conf: dict[str, str] = field(default_factory=dict)

    def validate(self) -> None:
        """Raises ConfigError for a ``conf`` key that is not a Spark setting."""
        for key in self.conf:
            if not key.startswith("spark."):
                raise ConfigError(
                    f"spark.conf key '{key}' is not a Spark setting: keys must start with 'spark.' "
                    "(e.g. spark.sql.shuffle.partitions)."
                )


@dataclass(frozen=True)
class Config:
    """Effective configuration of one release (frozen; validated when built).

    Defaults are those of the reference pipeline unless noted in the README. Build it from a
    mapping with :func:`config_from_dict` or from YAML with :func:`load_config`; derive a
    changed copy with :func:`dataclasses.replace` (which validates again).
    """

    # input and data model (spec §1)
    sensitive_microdata_path: str = ""
    sensitive_microdata_delimiter: str = ","
    sensitive_microdata_encoding: Literal["utf-8", "latin-1", "cp1252"] = "utf-8"
    input_format: Literal["csv", "parquet", "delta", "table"] = "csv"
    subject_id: str | None = None
    use_columns: list[str] = field(default_factory=list)
    multi_value_columns: dict[str, str] = field(default_factory=dict)
    sensitive_zeros: list[str] = field(default_factory=list)
    record_limit: int = -1
    # aggregation (spec §2)
    reporting_length: int = 3
    reporting_resolution: int = 10
    selection_order: Literal["ordinal", "case_insensitive"] = "ordinal"
    # synthesis (spec §4)
    synthesis_mode: SynthesisMode = "row_seeded"
    oversampling_ratio: float | None = None
    oversampling_tries: int | None = None
    use_synthetic_counts: bool = False
    weight_selection_percentile: float | None = None
    aggregate_seeded_counts_scale_factor: float | None = None
    aggregate_seeded_target_number_of_records: int | None = None
    # differential privacy (spec §3, defaults of §11)
    dp_aggregates: bool = False
    noise_epsilon: float = 4.0
    delta_factor: float | None = None
    percentile_percentage: int = 99
    percentile_epsilon_proportion: float = 0.01
    number_of_records_epsilon_proportion: float | None = 0.005
    sigma_proportions: list[float] | None = None
    noise_threshold_type: Literal["fixed", "adaptive"] = "adaptive"
    noise_threshold_values: dict[int, float] = field(default_factory=dict)
    dp_test_seed: int | None = None
    # execution and outputs
    parallel_jobs: int = 1
    cache_max_size: int = 100000
    output_dir: str = "./"
    prefix: str = "my"
    empty_value: str = ""
    spreadsheet_safe: bool = False
    synthetic_long_form: Literal["auto", "always", "never"] = "auto"
    seed: int | None = None
    table_format: Literal["delta", "parquet"] = "delta"
    output_catalog: str | None = None
    output_table_names: dict[str, str] = field(default_factory=dict)
    spark: SparkSettings = field(default_factory=SparkSettings)
    # showcase (spec §6.3, dashboard only)
    report_title: str = "Synthetic data showcase"
    report_pages: dict[str, list[str]] = field(default_factory=dict)
    report_visuals: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()
        if self.seed is None:
            object.__setattr__(self, "seed", secrets.randbits(63))
            logger.info("No seed configured: drew seed %d (recorded in the effective config; set 'seed' to "
                        "reproduce this release)", self.seed)

    # ------------------------------------------------------------------ derived values
    @property
    def k(self) -> int:
        """The privacy resolution ``reporting_resolution``."""
        return self.reporting_resolution

    def effective_reporting_length(self, n_columns: int) -> int:
        """Spec §2.1: ``L <= 0`` means all lengths; otherwise ``min(L, number of columns)``."""
        if self.reporting_length <= 0:
            return n_columns
        return min(self.reporting_length, n_columns)

    # ------------------------------------------------------------------ validation
    def validate(self) -> Config:
        """Checks ranges and cross-key rules; returns self. Raises ConfigError."""
        if not self.sensitive_microdata_path:
            raise ConfigError(
                "sensitive_microdata_path is required: set it to the sensitive CSV/Parquet/Delta path "
                "(or to a catalog table name with input_format: table)."
            )
        _require(self.reporting_resolution >= 1, "reporting_resolution",
                 f"must be an integer >= 1 (the privacy resolution k), got {self.reporting_resolution}")
        _require(len(self.sensitive_microdata_delimiter) >= 1, "sensitive_microdata_delimiter",
                 "must be a non-empty string such as ',' or '\\t'")
        _require(self.oversampling_ratio is None or self.oversampling_ratio >= 0, "oversampling_ratio",
                 "must be >= 0 (or null to disable oversampling control)")
        _require(self.oversampling_tries is None or self.oversampling_tries >= 1, "oversampling_tries",
                 "must be an integer >= 1 (or null)")
        _require(self.weight_selection_percentile is None or 0 <= self.weight_selection_percentile <= 100,
                 "weight_selection_percentile", "must be between 0 and 100 (or null for 95)")
        _require(self.aggregate_seeded_counts_scale_factor is None or self.aggregate_seeded_counts_scale_factor > 0,
                 "aggregate_seeded_counts_scale_factor", "must be > 0 (or null)")
        _require(self.aggregate_seeded_target_number_of_records is None
                 or self.aggregate_seeded_target_number_of_records >= 1,
                 "aggregate_seeded_target_number_of_records", "must be an integer >= 1 (or null)")
        _require(self.noise_epsilon > 0, "noise_epsilon", "must be > 0")
        _require(self.delta_factor is None or self.delta_factor > 0, "delta_factor", "must be > 0 (or null)")
        _require(0 <= self.percentile_percentage <= 100, "percentile_percentage", "must be between 0 and 100")
        _require(0 < self.percentile_epsilon_proportion < 1, "percentile_epsilon_proportion",
                 "must be strictly between 0 and 1")
        _require(self.number_of_records_epsilon_proportion is None
                 or 0 < self.number_of_records_epsilon_proportion < 1,
                 "number_of_records_epsilon_proportion", "must be strictly between 0 and 1 (or null)")
        if self.sigma_proportions is not None:
            _require(all(p > 0 for p in self.sigma_proportions), "sigma_proportions", "every value must be > 0")
            if self.dp_aggregates:
                _require(len(self.sigma_proportions) == self.reporting_length, "sigma_proportions",
                         f"must have one value per length 1..reporting_length ({self.reporting_length} values)")
        for length, value in self.noise_threshold_values.items():
            _require(length >= 2, "noise_threshold_values", f"keys are lengths >= 2, got {length}")
            if self.noise_threshold_type == "fixed":
                _require(value >= 0, "noise_threshold_values", "fixed thresholds must be >= 0")
            else:
                _require(0 < value <= 1, "noise_threshold_values", "adaptive thresholds must be in (0, 1]")
        if self.dp_aggregates:
            _require(self.reporting_length >= 1, "reporting_length",
                     "must be >= 1 with dp_aggregates: true (the DP path needs an explicit length)")
            _require(self.synthesis_mode == "aggregate_seeded", "synthesis_mode",
                     "must be 'aggregate_seeded' with dp_aggregates: true (only synthesis from the DP "
                     "aggregates inherits the DP guarantee; the other modes read the sensitive records)")
        _require(self.parallel_jobs >= 1, "parallel_jobs", "must be an integer >= 1")
        _require(self.cache_max_size >= 1, "cache_max_size", "must be an integer >= 1")
        _require(bool(_PREFIX_RE.fullmatch(self.prefix)), "prefix",
                 "must start with a letter or digit and hold only letters, digits, '.', '_' and '-' "
                 "(it becomes part of every file and table name)")
        _require(self.empty_value == "", "empty_value",
                 "only the empty string is supported (the order of the synthetic rows depends on it)")
        _require(not (set(self.multi_value_columns) & {self.subject_id}), "multi_value_columns",
                 "the subject_id column cannot also be a multi-value column")
        for column, delimiter in self.multi_value_columns.items():
            _require(len(delimiter) >= 1, "multi_value_columns", f"the delimiter of column '{column}' is empty")
        if self.output_catalog is not None:
            parts = self.output_catalog.split(".")
            _require(1 <= len(parts) <= 2 and all(p.strip() for p in parts), "output_catalog",
                     "must be 'schema' or 'catalog.schema' (managed tables are written there)")
        self.spark.validate()
        return self

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain dictionary of every key (defaults included), for the effective config file."""
        return dataclasses.asdict(self)

    def to_json(self, **extra: Any) -> str:
        """The effective configuration as pretty JSON, with derived values in ``extra``."""
        data = self.to_dict()
        data.update(extra)
        return json.dumps(data, indent=2, sort_keys=False, default=str) + "\n"


def _require(condition: bool, key: str, fix: str) -> None:
    if not condition:
        raise ConfigError(f"Invalid value for '{key}': {fix}.")


def _has_scheme(path: str) -> bool:
    return "://" in path or path.startswith(("dbfs:", "file:"))


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(v) for v in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return " or ".join(_type_name(a) for a in args) + " or null"
    if origin is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if origin is dict:
        kt, vt = typing.get_args(tp)
        return f"a mapping of {_type_name(kt)} to {_type_name(vt)}"
    return {int: "an integer", float: "a number", str: "a string", bool: "true/false"}.get(tp, str(tp))


def _coerce(key: str, value: Any, tp: Any) -> Any:
    """Converts a YAML value to the annotated type, or raises ConfigError naming the key."""
    origin = typing.get_origin(tp)
    fail = ConfigError(f"Invalid value for '{key}': expected {_type_name(tp)}, got {type(value).__name__} "
                       f"{value!r}.")
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(key, value, args[0])
    if origin is Literal:
        allowed = typing.get_args(tp)
        text = str(value).strip().lower() if isinstance(value, str) else value
        if text not in allowed:
            raise ConfigError(f"Invalid value for '{key}': {value!r} is not supported; use one of "
                              + ", ".join(repr(a) for a in allowed) + ".")
        return text
    if origin is list:
        if value is None:
            return []
        if not isinstance(value, (list, tuple)):
            raise fail
        return [_coerce(f"{key}[{i}]", v, typing.get_args(tp)[0]) for i, v in enumerate(value)]
    if origin is dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise fail
        kt, vt = typing.get_args(tp)
        return {_coerce(f"{key} key", k_, kt): _coerce(f"{key}.{k_}", v, vt) for k_, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise fail
        return value
    if tp is int:
        if isinstance(value, bool):
            raise fail
        if isinstance(value, int):
            return value
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise fail
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise fail
        return float(value)
    if tp is str:
        if isinstance(value, bool) or value is None or isinstance(value, (list, dict)):
            raise fail
        return str(value)
    raise fail


def _build(cls: type, data: dict[str, Any], section: str) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key not in known:
            close = difflib.get_close_matches(str(key), sorted(known), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            where = f" in section '{section}'" if section else ""
            raise ConfigError(f"Unknown configuration key '{key}'{where}.{hint} Remove it or use one of: "
                              + ", ".join(sorted(known)) + ".")
        name = f"{section}.{key}" if section else key
        if hints[key] is SparkSettings:
            if not isinstance(value, dict):
                raise ConfigError(f"Invalid value for '{name}': expected a mapping with master/conf.")
            kwargs[key] = _build(SparkSettings, value, name)
        else:
            kwargs[key] = _coerce(name, value, hints[key])
    return cls(**kwargs)


def config_from_dict(data: dict[str, Any] | None, base_dir: str | None = None) -> Config:
    """Builds and validates a Config from a mapping (e.g. parsed YAML or notebook widgets).

    Args:
        data: Configuration keys of spec §6.3 plus this project's keys.
        base_dir: Directory against which relative input/output paths are resolved.

    Returns:
        The validated Config.

    Raises:
        ConfigError: For unknown keys, wrong types or out-of-range values.
    """
    data = dict(data or {})
    if "seeded" in data:  # 2021 pipeline key
        seeded = data.pop("seeded")
        if not isinstance(seeded, bool):
            raise ConfigError("Invalid value for 'seeded': expected true/false (or use synthesis_mode).")
        data.setdefault("synthesis_mode", "row_seeded" if seeded else "unseeded")
    if "memory_limit_pct" in data:
        data.pop("memory_limit_pct")
        logger.info("Ignoring the 2021 key 'memory_limit_pct' (Spark manages memory).")
    if base_dir is not None:
        for key in ("sensitive_microdata_path", "output_dir"):
            value = data.get(key)
            input_format = str(data.get("input_format", "")).strip().lower()
            is_table = key == "sensitive_microdata_path" and input_format == "table"
            if isinstance(value, str) and value and not is_table and not (_has_scheme(value) or os.path.isabs(value)):
                data[key] = os.path.normpath(os.path.join(base_dir, value))
        data.setdefault("output_dir", os.path.normpath(os.path.join(base_dir, "./")))
    return _build(Config, data, "")


def load_config(path: str, overrides: dict[str, Any] | None = None) -> Config:
    """Reads a YAML config file, applies ``overrides`` (e.g. from the CLI) and validates it.

    Raises:
        ConfigError: If the file is missing, is not a YAML mapping, or holds invalid keys/values.
    """
    if not os.path.isfile(path):
        raise ConfigError(f"Config file not found: {path}. Pass the path of a YAML file such as conf/example.yaml.")
    with open(path, encoding="utf-8") as handle:
        try:
            data = yaml.safe_load(handle)
        except yaml.YAMLError as exc:
            raise ConfigError(f"Config file {path} is not valid YAML: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"Config file {path} must hold a mapping of keys to values, not {type(data).__name__}.")
    return config_from_dict(with_overrides(data, overrides), base_dir=os.path.dirname(os.path.abspath(path)))


def with_overrides(data: dict[str, Any], overrides: dict[str, Any] | None) -> dict[str, Any]:
    """``data`` with ``overrides`` applied; a dotted key such as ``spark.master`` or
    ``spark.conf`` sets a key inside that section (the section's other keys are kept)."""
    merged = dict(data)
    for key, value in (overrides or {}).items():
        section, dot, inner = str(key).partition(".")
        if dot and section == "spark":
            current = merged.get(section)
            nested = dict(current) if isinstance(current, dict) else {}
            if inner.startswith("conf.") and inner != "conf.":
                conf = dict(nested.get("conf") or {})
                conf[inner[len("conf."):]] = value
                nested["conf"] = conf
            else:
                nested[inner] = value
            merged[section] = nested
        else:
            merged[key] = value
    return merged
