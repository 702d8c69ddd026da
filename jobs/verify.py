"""spark-submit entry point: `spark-submit jobs/verify.py --sensitive PATH --synthetic PATH --k K
[--length L] [--config CONFIG] [--format FMT] [--report PATH]`.

Audits a synthetic dataset against the sensitive table (see `ksynth verify --help`). Exit status:
0 passed, 1 the k guarantee fails, 2 unusable input or config.
"""

import sys

from ksynth_spark.cli import main

if __name__ == "__main__":
    sys.exit(main(["verify", *sys.argv[1:]]))
