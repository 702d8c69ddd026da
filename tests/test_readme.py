"""The README stays true: its Python API example runs as written (on the shared Spark session)
and gives a checked release, and its table of outputs names every output of
``ksynth_spark.outputs``."""

from __future__ import annotations

import contextlib
import io as stdio
import os
import re

from ksynth_spark.outputs import OUTPUTS
from tests.conftest import REPO

README = (REPO / "README.md").read_text()


def _section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end if end > 0 else None]


def test_the_python_api_example_runs_as_written(spark, tmp_path, monkeypatch):
    block = re.search(r"```python\n(.*?)```", _section("Python API"), re.S)
    assert block is not None
    (tmp_path / "data").symlink_to(REPO / "data")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    with contextlib.redirect_stdout(stdio.StringIO()) as printed:
        exec(compile(block.group(1), "README.md", "exec"), namespace)
    result = namespace["result"]
    assert result.verification["passed"] is True
    assert result.privacy_statement in printed.getvalue()
    assert "matches at least 10" in result.privacy_statement
    microdata = result.synthetic_microdata.toPandas()
    assert len(microdata) == result.synthetic_record_count > 0 and list(microdata.columns)[0] == "syn_id"
    assert result.evaluation["synthetic_records"] == result.synthetic_record_count
    assert result.output_dir == str(tmp_path / "output" / "german")
    release = tmp_path / "output" / "german" / "release"
    assert (release / "my_synthetic_microdata.tsv").exists() and (release / "my_showcase.html").exists()
    assert sorted(os.listdir(tmp_path / "output" / "german")) == ["my_config.json", "release", "sensitive", "tables"]


def test_the_outputs_table_names_every_output_in_its_area():
    table = _section("Outputs")
    for entry in OUTPUTS:
        if entry.area == "tables":
            assert f"`{entry.key}`" in table, entry.key
        elif entry.area:
            assert f"P_{entry.suffix}" in table, entry.suffix
            row = next(line for line in table.splitlines() if f"P_{entry.suffix}" in line)
            assert row.startswith(f"| `{entry.area}/"), (entry.key, row[:60])
            if entry.dp_area:
                assert f"`{entry.dp_area}/` (DP)" in row, entry.key
        else:
            assert f"`P_{entry.suffix}`" in table
