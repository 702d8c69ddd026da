"""Synthesis (the generate stage): k-synthetic records from the distinct sensitive rows.

Pure numba/numpy kernels, one concern per module — ``index`` (the support index over distinct
rows), ``cache`` (the LRU support cache), ``paths`` (a growing record and its supports),
``seeded`` (row_seeded phase 1), ``unseeded``, ``aggregate_table`` (aggregate lookups),
``consolidation`` (quota-driven records), ``suppression``, ``order`` (output order) — and
``stage`` (the only one importing pyspark), which runs them on executors.
"""
