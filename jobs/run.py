"""spark-submit entry point: `spark-submit jobs/run.py CONFIG.yaml [--stage STAGE ...] [--set KEY=VALUE ...]`.

Runs every stage (default) or only the stages named with the repeatable ``--stage``
(aggregate, generate, evaluate, showcase; always run in pipeline order) and commits one release.
Parses parameters and calls the package (which must be importable on the driver and executors:
installed in the Python environment, or shipped with ``--py-files dist/ksynth_spark.zip``).
"""

import sys

from ksynth_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
