"""Reading back a committed release: its effective config, working tables and attribute dictionary.

A stage run alone (``ksynth showcase``, ``ksynth evaluate``, a stage notebook) builds on what
earlier runs committed to ``output_dir`` instead of recomputing it or reloading the sensitive
table: the effective configuration ``P_config.json`` (what earlier stages did: headers, record
counts, the verification record, the evaluation figures), the working tables under ``tables/``
(or the managed catalog tables with ``output_catalog``) and the files of ``release/``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np
import pandas as pd

from ksynth_spark import io
from ksynth_spark.config import Config
from ksynth_spark.model import EncodedData
from ksynth_spark.outputs import file_name

logger = logging.getLogger(__name__)


def catalog_table_name(config: Config, name: str) -> str:
    """Managed table name of working table ``name``: ``<output_catalog>.<prefix>_<name>`` unless
    ``output_table_names`` maps ``name`` to another table name."""
    return f"{config.output_catalog}.{config.output_table_names.get(name, f'{config.prefix}_{name}')}"


class Committed:
    """The release committed under ``config.output_dir`` (read lazily)."""

    def __init__(self, spark, config: Config):
        self.spark = spark
        self.config = config
        self._effective: dict[str, Any] | None = None

    def path(self, area: str, name: str = "") -> str:
        """Committed path of ``name`` in ``area`` (``""`` = the top level)."""
        return "/".join([self.config.output_dir.rstrip("/") or "/"] + [p for p in (area, name) if p])

    @property
    def effective(self) -> dict[str, Any]:
        """The committed effective configuration (``{}`` when there is none)."""
        if self._effective is None:
            path = self.path("", file_name(self.config.prefix, "config"))
            self._effective = json.loads(io.read_text(self.spark, path)) if io.exists(self.spark, path) else {}
        return self._effective

    @property
    def derived(self) -> dict[str, Any]:
        """What earlier stages recorded (``derived`` of the effective config)."""
        return dict(self.effective.get("derived") or {})

    def has_table(self, name: str) -> bool:
        """Whether working table ``name`` was committed."""
        if self.config.output_catalog:
            return bool(self.spark.catalog.tableExists(catalog_table_name(self.config, name)))
        return io.exists(self.spark, self.path("tables", name))

    def table(self, name: str):
        """The committed working table ``name`` as a DataFrame."""
        if self.config.output_catalog:
            return self.spark.table(catalog_table_name(self.config, name))
        return io.read_table(self.spark, self.path("tables", name), self.config.table_format)

    def read_file(self, area: str, name: str) -> bytes | None:
        """A committed file's bytes, or None when it is missing."""
        path = self.path(area, name)
        return io.read_bytes(self.spark, path) if io.exists(self.spark, path) else None

    def data(self) -> EncodedData | None:
        """The encoded data model without its rows (attribute dictionary, headers, N), from the
        committed ``attribute_dictionary`` table and config; None when not committed."""
        derived = self.derived
        if not self.has_table("attribute_dictionary") or "headers" not in derived:
            return None
        attributes = self.table("attribute_dictionary").toPandas().sort_values("attr_id", kind="stable")
        attributes = attributes.reset_index(drop=True).astype({"attr_id": np.int32, "column_index": np.int32,
                                                               "count": np.int64})
        return EncodedData(rows=None, attributes=pd.DataFrame(attributes), headers=list(derived["headers"]),
                           n_records=int(derived["n_records"]), n_rows=int(derived.get("n_rows", 0)))
