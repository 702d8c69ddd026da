"""Deployment: the ``--py-files`` zip, a real spark-submit run that imports the package only from
it, the ``run --stage`` option, the config profiles and the Databricks bundle.

The venv has the package installed editable (a meta-path finder installed by a ``.pth`` file in
site-packages points at the repository). To prove the zip is what runs, the spark-submit driver
and its Python workers start with ``python -S``: no ``.pth`` file is processed, so the only
``ksynth_spark`` on the path is the zip; site-packages is put on ``PYTHONPATH`` for the
dependencies (numpy, numba, pandas, pyarrow, yaml, matplotlib). The CLI logs where it was
imported from; the test checks that too.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml

from tests.conftest import DATA, REPO

BIN = Path(sys.executable).parent
SITE_PACKAGES = sysconfig.get_paths()["purelib"]


def build_zip(dest: Path) -> Path:
    """Builds ``dest/ksynth_spark.zip`` with the Makefile's ``zip`` recipe (the same steps in
    Python when ``make`` is missing): a copy of the package without ``__pycache__``, zipped with
    ``python -m zipfile -c``."""
    if shutil.which("make"):
        subprocess.run(["make", "-s", "-C", str(REPO), "zip", f"PYTHON={sys.executable}", f"DIST={dest}",
                        f"BUILD={dest / 'build'}"], check=True, capture_output=True, text=True)
    else:
        staged = dest / "build" / "pyfiles"
        shutil.copytree(REPO / "ksynth_spark", staged / "ksynth_spark",
                        ignore=shutil.ignore_patterns("__pycache__"))
        subprocess.run([sys.executable, "-m", "zipfile", "-c", str(dest / "ksynth_spark.zip"), "ksynth_spark"],
                       cwd=staged, check=True)
    return dest / "ksynth_spark.zip"


@pytest.fixture(scope="module")
def pyfiles_zip(tmp_path_factory):
    return build_zip(tmp_path_factory.mktemp("dist"))


def _no_site_python(directory: Path) -> Path:
    """A ``python -S`` wrapper: the interpreter without site-packages' .pth files (no editable finder)."""
    wrapper = directory / "python-nosite"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


def _zip_only_env(directory: Path) -> dict:
    python = str(_no_site_python(directory))
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONSTARTUP")}
    import pyspark

    return {**env, "PYTHONPATH": SITE_PACKAGES, "PYSPARK_PYTHON": python, "PYSPARK_DRIVER_PYTHON": python,
            "SPARK_HOME": os.path.dirname(pyspark.__file__)}


def test_zip_holds_the_package_and_its_assets_and_imports_with_zipimport(pyfiles_zip, tmp_path):
    import zipfile

    names = zipfile.ZipFile(pyfiles_zip).namelist()
    assert "ksynth_spark/__init__.py" in names and "ksynth_spark/cli.py" in names
    assert {f"ksynth_spark/report/showcase_assets/showcase.{ext}" for ext in ("html", "js", "css")} <= set(names)
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or not n.startswith("ksynth_spark/")]
    code = (
        "import ksynth_spark, pandas as pd\n"
        "from ksynth_spark.report.privacy import ReleaseFacts\n"
        "from ksynth_spark.report.showcase import render_showcase_html\n"
        "html = render_showcase_html(pd.DataFrame({'a': ['x', 'y']}),\n"
        "    pd.DataFrame({'selections': ['record_count', 'a:x'], 'protected_count': [10, 10]}),\n"
        "    title='zip', facts=ReleaseFacts(mode='row_seeded', k=10, reporting_length=1, dp=False))\n"
        "print(ksynth_spark.__file__, type(ksynth_spark.__loader__).__name__, len(html))\n"
    )
    env = _zip_only_env(tmp_path)
    env["PYTHONPATH"] = f"{pyfiles_zip}{os.pathsep}{SITE_PACKAGES}"
    result = subprocess.run([str(_no_site_python(tmp_path)), "-c", code], capture_output=True, text=True,
                            cwd=tmp_path, env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    location, loader, size = result.stdout.split()
    assert location.startswith(f"{pyfiles_zip}{os.sep}ksynth_spark") and loader == "zipimporter"
    assert int(size) > 10000  # the template, script and style sheet were read from the zip


def test_spark_submit_with_py_files_zip_runs_the_requested_stages(pyfiles_zip, tmp_path):
    spark_submit = BIN / "spark-submit"
    if not spark_submit.exists():
        pytest.skip("spark-submit of the installed pyspark not found next to the interpreter")
    work = tmp_path / "work"
    work.mkdir()
    out = tmp_path / "out"
    (work / "job.yaml").write_text(yaml.safe_dump({
        "sensitive_microdata_path": str(DATA / "german_credit.csv"), "reporting_length": 2,
        "reporting_resolution": 10, "table_format": "parquet", "output_dir": str(out), "prefix": "gc", "seed": 5,
        "spark": {"master": "local[*]"},  # ignored under spark-submit: --master decides
    }))
    result = subprocess.run(
        [str(spark_submit), "--master", "local[1]", "--conf", "spark.ui.enabled=false",
         "--conf", "spark.sql.shuffle.partitions=2", "--py-files", str(pyfiles_zip),
         str(REPO / "jobs" / "run.py"), "job.yaml", "--stage", "aggregate", "--stage", "generate"],
        capture_output=True, text=True, cwd=work, env=_zip_only_env(tmp_path), timeout=900,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    origin = re.search(r"ksynth-spark \S+ from (\S+)", log)
    assert origin and origin.group(1) == f"{pyfiles_zip}{os.sep}ksynth_spark", log[-2000:]
    assert "master local[1]" in log  # the session is spark-submit's, not the config's local[*]
    assert "[aggregate] finished" in log and "[generate] finished" in log and "[evaluate]" not in log
    release = out / "release"
    lines = (release / "gc_reportable_aggregates.tsv").read_text().splitlines()
    assert lines[0] == "selections\tprotected_count" and lines[1] == "record_count\t1000"
    header = (release / "gc_synthetic_microdata.tsv").read_text().splitlines()[0].split("\t")
    assert len(header) == 21 and "credit_risk" in header
    assert not (release / "gc_showcase.html").exists()
    assert json.loads((out / "gc_config.json").read_text())["stages"] == ["aggregate", "generate"]


def test_run_accepts_repeatable_stage_option():
    from ksynth_spark.cli import build_parser

    args = build_parser().parse_args(["run", "c.yaml", "--stage", "generate", "--stage", "aggregate"])
    assert args.stages == ["generate", "aggregate"]
    assert build_parser().parse_args(["run", "c.yaml"]).stages is None
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "c.yaml", "--stage", "publish"])


def test_config_profiles_load():
    from ksynth_spark.config import Config, config_from_dict, load_config

    local = load_config(str(REPO / "conf" / "local.yaml"))
    assert local.spark.master.startswith("local") and os.path.isabs(local.sensitive_microdata_path)
    cluster = load_config(str(REPO / "conf" / "cluster.yaml"))
    assert cluster.table_format == "delta" and cluster.spark.master is None
    assert {"spark.executor.memory", "spark.executor.cores", "spark.sql.shuffle.partitions"} <= set(cluster.spark.conf)
    assert "://" in cluster.sensitive_microdata_path and "://" in cluster.output_dir
    data = yaml.safe_load((REPO / "conf" / "databricks.yaml").read_text())
    assert data["input_format"] == "table" and data["table_format"] == "delta"
    assert data["output_dir"].startswith("/Volumes/") and data["output_catalog"] == "main.ctdc"
    if "output_catalog" not in Config.__dataclass_fields__:  # the catalog-output key lands separately
        data.pop("output_catalog")
    assert config_from_dict(data).sensitive_microdata_path == "main.ctdc.victims"


def test_databricks_bundle_runs_the_ksynth_entry_point_of_the_wheel():
    bundle = yaml.safe_load((REPO / "databricks" / "bundle.yml").read_text())
    (job,) = bundle["resources"]["jobs"].values()
    (task,) = job["tasks"]
    wheel_task = task["python_wheel_task"]
    assert wheel_task["package_name"] == "ksynth_spark" and wheel_task["entry_point"] == "ksynth"
    assert wheel_task["parameters"][0] == "run" and wheel_task["parameters"][1].endswith("databricks.yaml")
    assert any(str(lib.get("whl", "")).endswith(".whl") for lib in task["libraries"])
    assert task["job_cluster_key"] in {c["job_cluster_key"] for c in job["job_clusters"]}
    scripts = (REPO / "pyproject.toml").read_text().split("[project.scripts]", 1)[1]
    assert re.search(r'^ksynth = "ksynth_spark\.cli:main"$', scripts, re.MULTILINE)
    # The job cluster's runtime runs the Spark version the package is pinned to and tested with.
    (cluster,) = job["job_clusters"]
    runtime = cluster["new_cluster"]["spark_version"]
    variable = re.fullmatch(r"\$\{var\.(\w+)\}", runtime)
    if variable:
        runtime = bundle["variables"][variable.group(1)]["default"]
    spark_of_runtime = {"17.3": "4.0", "18": "4.1", "19": "4.2"}  # Databricks Runtime -> Apache Spark
    major = re.fullmatch(r"(\d+(?:\.\d+)?)\.x-scala2\.13", runtime)
    assert major and major.group(1) in spark_of_runtime, runtime
    pinned = re.search(r'"pyspark==(\d+\.\d+)\.\d+"', (REPO / "pyproject.toml").read_text())
    assert pinned and spark_of_runtime[major.group(1)] == pinned.group(1), (runtime, pinned)
    assert runtime in (REPO / "docs" / "running.md").read_text()  # the runtime matrix names it
