"""Byte-identical releases for one seed, whatever the partitioning (and across code versions).

Runs ``ksynth run`` on a config in fresh processes with different Spark settings —
``spark.sql.shuffle.partitions`` 2 and 16, ``local[1]`` and ``local[2]`` — and compares the
SHA-256 of every file of ``release/`` and ``sensitive/`` (the working tables are Spark part
files whose names differ from run to run; the effective config records timings and is left
out). Prints one line per file that differs, the preservation by length of each run, and a
verdict. With ``--compare DIR`` it compares the first run with a release folder made earlier
(e.g. by another version of the code, to show that a refactoring changed no output).

Usage::

    .venv/bin/python benchmarks/determinism.py [--config conf/example.yaml] [--set synthesis_mode=unseeded]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SETTINGS = {
    "local[2], 16 shuffle partitions": ["spark.master=local[2]", "spark.conf.spark.sql.shuffle.partitions='16'"],
    "local[2], 2 shuffle partitions": ["spark.master=local[2]", "spark.conf.spark.sql.shuffle.partitions='2'"],
    "local[1], 16 shuffle partitions": ["spark.master=local[1]", "spark.conf.spark.sql.shuffle.partitions='16'"],
}


def digests(folder: Path) -> dict[str, str]:
    """SHA-256 of every file of ``release/`` and ``sensitive/`` under ``folder``."""
    found = {}
    for area in ("release", "sensitive"):
        for path in sorted((folder / area).glob("*")):
            found[f"{area}/{path.name}"] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def preservation(folder: Path) -> str:
    files = list((folder / "release").glob("*_preservation_by_length.tsv"))
    if not files:
        return "-"
    rows = [line.split("\t") for line in files[0].read_text().splitlines()[1:]]
    return " / ".join(f"{float(row[2]):.3f}" for row in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "conf" / "example.yaml"))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--compare", help="a release folder made earlier to compare the first run with")
    args = parser.parse_args()
    ksynth = Path(sys.executable).parent / "ksynth"
    root = Path(tempfile.mkdtemp(prefix="ksynth-determinism-"))
    results = {}
    for label, spark_settings in SETTINGS.items():
        out = root / label.replace(" ", "_").replace(",", "").replace("[", "").replace("]", "")
        command = [str(ksynth), "run", args.config, "--output-dir", str(out), "--set", "table_format=parquet",
                   "--log-level", "WARNING"]
        for item in spark_settings + args.overrides:
            command += ["--set", item]
        subprocess.run(command, check=True, env={**os.environ, "PYSPARK_PYTHON": sys.executable})
        results[label] = digests(out)
        print(f"{label:<34} {len(results[label])} files, preservation by length {preservation(out)}", flush=True)
    reference_label = next(iter(results))
    reference = results[reference_label]
    same = True
    for label, found in results.items():
        for name in sorted(set(found) | set(reference)):
            if found.get(name) != reference.get(name):
                same = False
                print(f"DIFFERS: {name} ({label} vs {reference_label})")
    if args.compare:
        earlier = digests(Path(args.compare))
        for name in sorted(set(earlier) | set(reference)):
            if earlier.get(name) != reference.get(name):
                print(f"differs from {args.compare}: {name}")
    print("byte-identical across settings" if same else "NOT byte-identical across settings")


if __name__ == "__main__":
    main()
