"""The Databricks notebooks in ``notebooks/``, executed cell by cell in-process.

Each notebook is Databricks source format: cells separated by ``# COMMAND ----------``, markdown
and magics as ``# MAGIC`` lines (skipped here). The cells run in one namespace holding the
session-scoped ``spark`` fixture and small stand-ins for ``dbutils.widgets``, ``display`` and
``displayHTML`` that record what the notebook showed.
"""

import ast
import logging
from pathlib import Path

from tests.conftest import DATA, REPO

NOTEBOOKS = REPO / "notebooks"
SEPARATOR = "# COMMAND ----------"
STAGE_NOTEBOOKS = ["ksynth_aggregate.py", "ksynth_generate.py", "ksynth_evaluate.py", "ksynth_showcase.py"]
WIDGETS = {"config_path", "config_yaml", "input_table", "input_format", "output_dir", "output_catalog", "k",
           "reporting_length", "synthesis_mode", "seed"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class Widgets:
    """Stand-in for ``dbutils.widgets``: definitions with defaults, values set by the 'job'."""

    def __init__(self, values):
        self.values = dict(values)
        self.defaults, self.choices = {}, {}

    def text(self, name, defaultValue, label=None):  # noqa: N803 (Databricks' argument names)
        self.defaults[name] = defaultValue

    def dropdown(self, name, defaultValue, choices, label=None):  # noqa: N803
        assert defaultValue in choices, f"default of dropdown {name} is not one of its choices"
        self.defaults[name], self.choices[name] = defaultValue, list(choices)

    def get(self, name):
        if name not in self.defaults:
            raise ValueError(f"InputWidgetNotDefined: {name}")
        value = self.values.get(name, self.defaults[name])
        assert name not in self.choices or value in self.choices[name], f"{value!r} is not a choice of {name}"
        return value


class DBUtils:
    def __init__(self, values):
        self.widgets = Widgets(values)


def notebook_cells(path: Path) -> list[str]:
    """The code cells of a Databricks source notebook (``# MAGIC`` lines dropped)."""
    first, _, body = path.read_text(encoding="utf-8").partition("\n")
    assert first == "# Databricks notebook source", f"{path.name} is not a Databricks source notebook"
    cells = []
    for chunk in body.split(SEPARATOR):
        code = "\n".join(line for line in chunk.splitlines() if not line.startswith("# MAGIC"))
        if code.strip():
            cells.append(code)
    return cells


def run_notebook(name: str, spark, widget_values: dict) -> dict:
    """Executes every cell of ``notebooks/<name>``; returns what was displayed and the namespace."""
    dbutils = DBUtils(widget_values)
    shown = {"display": [], "html": []}
    namespace = {"__name__": "__main__", "spark": spark, "dbutils": dbutils,
                 "display": shown["display"].append, "displayHTML": shown["html"].append}
    logger = logging.getLogger("ksynth_spark")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    try:
        for index, code in enumerate(notebook_cells(NOTEBOOKS / name)):
            exec(compile(code, f"{name}[cell {index}]", "exec"), namespace)  # noqa: S102
    finally:
        logger.handlers[:], logger.level, logger.propagate = saved
    unknown = set(widget_values) - set(dbutils.widgets.defaults)
    assert not unknown, f"{name} defines no widget(s) {sorted(unknown)}"
    return {**shown, "namespace": namespace}


def displayed_charts(shown: dict) -> list:
    """Rows (path, content) of every displayed DataFrame of PNG files."""
    rows = []
    for item in shown["display"]:
        if hasattr(item, "columns") and "content" in item.columns:
            rows += item.collect()
    return rows


def test_every_notebook_is_databricks_source_without_algorithm_code():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.py")) == sorted(["ksynth_end_to_end.py", *STAGE_NOTEBOOKS])
    for path in NOTEBOOKS.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert text.count(SEPARATOR) >= 5 and "# MAGIC %md" in text
        code = "\n".join(notebook_cells(path))
        tree = ast.parse(code)
        imported = {(node.module if isinstance(node, ast.ImportFrom) else alias.name).split(".")[0]
                    for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
                    for alias in node.names}
        assert imported <= {"ksynth_spark", "yaml"}, f"{path.name} imports {imported}: glue only, no algorithms"
        assert "ks.run(config, " in code, path.name
        assert "define_widgets(dbutils)" in code and "config_from_widgets(dbutils)" in code, path.name
    # the shared declarations expose every widget
    from ksynth_spark.notebook import define_widgets

    dbutils = DBUtils({})
    define_widgets(dbutils)
    assert set(dbutils.widgets.defaults) == WIDGETS


def test_end_to_end_notebook_on_a_csv_path(spark, tmp_path):
    out = tmp_path / "out"
    shown = run_notebook("ksynth_end_to_end.py", spark, {
        "config_yaml": "table_format: parquet\nprefix: gc\nreport_title: Notebook test",
        "input_table": str(DATA / "german_credit.csv"), "input_format": "csv", "output_dir": str(out),
        "k": "10", "reporting_length": "2", "synthesis_mode": "row_seeded", "seed": "11",
    })
    config = shown["namespace"]["config"]
    assert (config.k, config.reporting_length, config.table_format, config.seed) == (10, 2, "parquet", 11)
    charts = displayed_charts(shown)
    assert charts and all(r["path"].endswith(".png") and r["content"].startswith(PNG_MAGIC) for r in charts)
    assert any("preservation_by_length" in r["path"] for r in charts)
    assert len(shown["html"]) == 1
    html = shown["html"][0]
    assert 'id="showcase-data"' in html and "Notebook test" in html
    assert html == (out / "release" / "gc_showcase.html").read_text(encoding="utf-8")
    for name in ("gc_reportable_aggregates.tsv", "gc_synthetic_microdata.tsv", "gc_summary.md"):
        assert (out / "release" / name).exists(), name


def test_stage_notebooks_in_order_on_a_catalog_table(spark, tmp_path):
    view = "ksynth_notebook_victims"
    spark.read.csv(str(DATA / "german_credit.csv"), header=True).createOrReplaceTempView(view)
    out = tmp_path / "out"
    config_file = tmp_path / "notebook.yaml"
    config_file.write_text(f"sensitive_microdata_path: {view}\ninput_format: table\ntable_format: parquet\n"
                           f"reporting_length: 2\nreporting_resolution: 10\nprefix: gc\nseed: 3\n")
    widgets = {"config_path": str(config_file), "output_dir": str(out)}
    try:
        shown = {name: run_notebook(name, spark, widgets) for name in STAGE_NOTEBOOKS}
    finally:
        spark.catalog.dropTempView(view)

    assert (out / "release" / "gc_reportable_summary.tsv").exists()
    summary = shown["ksynth_aggregate.py"]["display"][0].collect()
    assert {"parameter": "record_count", "value": "1000"} in [r.asDict() for r in summary]
    synthetic = shown["ksynth_generate.py"]["display"][0]
    assert "credit_risk" in synthetic.columns and 0 < synthetic.count() <= 100
    charts = displayed_charts(shown["ksynth_evaluate.py"])
    assert charts and all(r["content"].startswith(PNG_MAGIC) for r in charts)
    assert not shown["ksynth_showcase.py"]["display"] and len(shown["ksynth_showcase.py"]["html"]) == 1
    assert 'id="showcase-data"' in shown["ksynth_showcase.py"]["html"][0]
    # every stage committed into the one output_dir, reading what the earlier stages stored
    release = {p.name for p in (out / "release").iterdir()}
    assert {"gc_reportable_aggregates.tsv", "gc_synthetic_microdata.tsv", "gc_summary.md",
            "gc_showcase.html"} <= release
    assert not [p for p in out.iterdir() if p.name.startswith(".staging")]
