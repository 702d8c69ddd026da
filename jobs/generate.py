"""spark-submit entry point: `spark-submit jobs/generate.py CONFIG.yaml [--set KEY=VALUE ...]`.

Parses parameters and calls the package (which must be importable on the driver and executors:
installed in the Python environment, or shipped with --py-files).
"""

import sys

from ksynth_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["generate", *sys.argv[1:]]))
