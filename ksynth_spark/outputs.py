"""The one table of a release's outputs: every file and working table, its area and its stage.

Areas under ``output_dir`` (prefix ``P``):

* ``release/``: publishable files;
* ``sensitive/``: files that reveal sensitive counts or record-level risk (keep restricted);
* ``tables/``: Delta/Parquet working tables (restricted: they hold the encoded sensitive rows);
* the top level: the effective configuration ``P_config.json`` (restricted).

With differential privacy only what is derived from the DP aggregates alone is public: the
evaluation outputs, which compare the synthetic data with the sensitive data, move to
``sensitive/`` (their ``dp_area``). The pipeline writes every output through this table, the
README's output table is checked against it by a test, and nothing else decides a location.
"""

from __future__ import annotations

from dataclasses import dataclass

AREAS = ("release", "sensitive", "tables")


@dataclass(frozen=True)
class Output:
    """One output of a release.

    Attributes:
        key: Logical name (the file name without prefix and extension, or the table name).
        area: ``release``, ``sensitive``, ``tables`` or ``""`` (top level).
        suffix: File name after ``P_`` (``""`` for a table directory).
        stage: The stage that writes it.
        dp_area: The area in a differentially private release, when it differs.
        description: What it holds (one line, for the README and the summary).
    """

    key: str
    area: str
    suffix: str
    stage: str
    dp_area: str | None = None
    description: str = ""

    def area_for(self, dp: bool) -> str:
        """The area of this output in a k-anonymous (``dp`` False) or DP release."""
        return self.dp_area if dp and self.dp_area else self.area


def _file(key: str, area: str, stage: str, description: str, ext: str = "tsv", dp_area: str | None = None) -> Output:
    return Output(key, area, f"{key}.{ext}", stage, dp_area, description)


def _table(key: str, stage: str, description: str) -> Output:
    return Output(key, "tables", "", stage, None, description)


OUTPUTS: tuple[Output, ...] = (
    # aggregate
    _file("reportable_aggregates", "release", "aggregate",
          "protected counts of every combination up to the reporting length (k-anonymous or DP)"),
    _file("reportable_summary", "release", "aggregate", "privacy model, reporting length, published record count, "
          "reportable combinations per length"),
    _file("sensitive_aggregates", "sensitive", "aggregate", "exact counts of every combination, rare ones included"),
    _file("sensitive_rare_by_length", "sensitive", "aggregate", "rare combinations per length"),
    _file("sensitive_analysis_by_length", "sensitive", "aggregate", "records with a unique / rare combination at their "
          "shortest length"),
    _file("parameters", "sensitive", "aggregate", "k, reporting length, protected N, records at risk"),
    _table("sensitive_aggregates", "aggregate", "exact combination counts"),
    _table("reportable_aggregates", "aggregate", "protected combination counts"),
    _table("attribute_dictionary", "aggregate", "attribute ids, columns, values and exact counts"),
    _table("encoded_rows", "aggregate", "the distinct sensitive attribute sets with their number of records"),
    # generate
    _file("synthetic_microdata", "release", "generate", "one row per synthetic record"),
    _file("synthetic_microdata_long", "release", "generate", "Id, Attribute, Value, AttributeValue for BI tools"),
    _table("synthetic_microdata", "generate", "the synthetic microdata as a table"),
    _table("synthetic_records", "generate", "the distinct synthetic records with counts and row numbers"),
    # evaluate
    _file("synthetic_aggregates", "release", "evaluate", "combination counts of the synthetic data"),
    _file("synthetic_leakage_by_length", "release", "evaluate", "synthetic combinations rare in both tables",
          dp_area="sensitive"),
    _file("preservation_by_length", "release", "evaluate", "count preservation and error per length",
          dp_area="sensitive"),
    _file("preservation_by_count", "release", "evaluate", "count preservation and error per count bucket",
          dp_area="sensitive"),
    _file("single_attribute_counts", "release", "evaluate", "synthetic vs protected count of every attribute",
          dp_area="sensitive"),
    _file("stats_synthetic_data", "release", "evaluate", "sensitive vs synthetic summary metrics",
          dp_area="sensitive"),
    _file("stats_aggregate_counts", "release", "evaluate", "sensitive vs reportable summary metrics",
          dp_area="sensitive"),
    _file("summary", "release", "evaluate", "the one-page summary in plain words", ext="md", dp_area="sensitive"),
    _file("synthetic_rare_combos_by_length", "sensitive", "evaluate",
          "synthetic combinations under k with their sensitive counts"),
    _table("synthetic_aggregates", "evaluate", "synthetic combination counts"),
    # showcase
    _file("showcase", "release", "showcase", "the data showcase page (one offline file)", ext="html"),
    # every run
    _file("config", "", "run", "the effective configuration, the seed and what the run did", ext="json"),
)

_BY_KEY = {(o.key, o.area == "tables"): o for o in OUTPUTS}


def output(key: str, table: bool = False) -> Output:
    """The output named ``key`` (a working table when ``table`` is true).

    Raises:
        KeyError: For a name that is not in :data:`OUTPUTS`.
    """
    return _BY_KEY[(key, table)]


def file_name(prefix: str, key: str) -> str:
    """``<prefix>_<suffix>`` of the file output ``key``."""
    return f"{prefix}_{output(key).suffix}"


#: Evaluation charts: ``<prefix>_<stem>.png/.svg``; sensitive charts (``sensitive_*``) go to
#: ``sensitive/``, the others follow the evaluation files (``release/``, or ``sensitive/`` in DP).
CHART_EXTENSIONS = ("png", "svg")


def chart_area(stem: str, dp: bool) -> str:
    """The area of the evaluation chart ``<prefix>_<stem>.<ext>``."""
    return "sensitive" if stem.startswith("sensitive_") or dp else "release"
