"""Render the offline data showcase page from releasable k-synthetic artifacts.

The showcase is a single self-contained HTML file (script, style and data all
inline; no network access of any kind) that lets policy makers explore the
synthetic microdata side by side with the protected actual counts of the
reportable aggregates. It is built ONLY from the two releasable artifacts:

* the synthetic microdata (one row per synthetic record, all strings, an empty
  string meaning "no attribute in this column"), and
* the reportable aggregates (``selections`` / ``protected_count``; the first
  row ``record_count`` holds the protected number of records, every other row a
  combination ``col:value;col:value`` whose true count is at least k, rounded
  down to a multiple of k).

This module is pure pandas/json (no Spark). The page itself lives in
``showcase_assets/``: a small HTML template, one script and one style sheet.
The renderer fills the template placeholders in a single pass.

Embedded data format (JSON inside ``<script type="application/json"
id="showcase-data">``; ``<``, ``>`` and ``&`` are written as ``\\u003c`` etc.
so no value can close the script element)::

    {
      "format": 1,
      "title": str, "k": int, "reporting_length": int,
      "protected_record_count": int | null,
      "facts": [[name, value], ...],
      "record_count": int,                      # synthetic records
      "columns": [{"name": str,
                   "values": [str, ...],        # value dictionary
                   "code_bytes": 1 | 2 | 4,
                   "codes": str}],              # base64 of little-endian uints, per
                                                # record: 0 = empty, i >= 1 -> values[i - 1]
      "pages": [{"name": str, "items": [item, ...]}],
          # item = {"type": "column", "column": int}
          #      | {"type": "visual", "name": str, "columns": [int, ...],
          #         "labels": [str, ...]}
      "reportable": [{"size": n, "unit": u, "data": [a1, ..., an, count / u, ...]}],
          # attribute id of (column c, value index i) = offset(c) + i where
          # offset(c) = total number of values of the columns before c; the
          # ids of one combination are sorted ascending.
      "evaluation": null | {"metrics": [[name, value], ...],
                            "charts": [[caption, svg_text], ...]}
    }
"""

from __future__ import annotations

import base64
import json
import logging
import math
import numbers
import re
from collections.abc import Mapping
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

__all__ = ["render_showcase_html", "extract_showcase_data", "parse_selections", "DEFAULT_PAGE_NAME"]

#: Name of the page that receives every column not listed in ``report_pages``.
DEFAULT_PAGE_NAME = "Other attributes"
#: Name of the single page used when no ``report_pages`` are given.
ALL_ATTRIBUTES_PAGE_NAME = "All attributes"

#: Package-relative folder of the page assets, read with importlib.resources (works from a zip).
_ASSET_PACKAGE, _ASSET_DIR_NAME = __package__ or "ksynth_spark.report", "showcase_assets"
_PLACEHOLDER_RE = re.compile(r"/\*__(?:DATA|SCRIPT|STYLE)__\*/|__TITLE__")
_DATA_RE = re.compile(
    r'<script type="application/json" id="showcase-data">(.*?)</script>', re.DOTALL
)
_RECORD_COUNT_KEY = "record_count"


# --------------------------------------------------------------------------- #
# Public API
# --------------------------------------------------------------------------- #
def render_showcase_html(
    synthetic: pd.DataFrame,
    reportable: pd.DataFrame,
    *,
    title: str,
    k: int,
    reporting_length: int,
    dataset_facts: dict[str, object] | None = None,
    evaluation: dict | None = None,
    report_pages: dict[str, list[str]] | None = None,
    report_visuals: dict[str, list[str]] | None = None,
) -> str:
    """Render the self-contained showcase page.

    Args:
        synthetic: Synthetic microdata, one row per record; every cell a string
            and the empty string meaning "no attribute" (NaN/None are treated
            as empty too).
        reportable: Reportable aggregates with columns ``selections`` and
            ``protected_count``; the ``record_count`` row carries the protected
            number of records.
        title: Page title (shown as heading and in the browser tab).
        k: The privacy resolution k (minimum group size, rounding step).
        reporting_length: The reporting length R (longest reported
            combination). The page allows at most R - 1 selections.
        dataset_facts: Ordered name -> value pairs shown as figures. When
            omitted, the synthetic record count and the protected record count
            are shown.
        evaluation: Optional ``{"metrics": {name: value}, "charts":
            {caption: svg_text}}`` shown in the second view. SVG texts are
            inlined after removing any XML prolog, DOCTYPE, comments and
            metadata, with their element ids made unique per chart.
        report_pages: Page name -> column names; columns are grouped into
            pages (tabs). Columns not listed go to a default page.
        report_visuals: Visual name -> column names; the columns (typically
            the binary ``<header>_<piece>`` columns of an expanded multi-value
            attribute) are shown together in one chart whose bars are the
            pieces.

    Returns:
        The complete HTML document as a string.

    Raises:
        ValueError: On invalid parameters, malformed reportable selections, or
            unknown/duplicated column names in ``report_pages`` or
            ``report_visuals``.
    """
    _check_positive_int("k", k)
    _check_positive_int("reporting_length", reporting_length)
    if not isinstance(title, str):
        raise ValueError(f"title must be a string, got {type(title).__name__}")

    synthetic = _normalise_synthetic(synthetic)
    column_names = [str(c) for c in synthetic.columns]
    columns, value_index = _encode_columns(synthetic)
    pages = _build_pages(column_names, columns, report_pages, report_visuals)
    record_count, combos = _parse_reportable(reportable)
    reportable_blocks, kept = _encode_reportable(combos, value_index)
    logger.info(
        "Showcase: %d synthetic records x %d columns, %d of %d reportable combinations embedded",
        len(synthetic), len(column_names), kept, len(combos),
    )

    if dataset_facts is None:
        facts: list[list[Any]] = [["Synthetic records", int(len(synthetic))]]
        if record_count is not None:
            facts.append(["Protected record count", record_count])
    else:
        if not isinstance(dataset_facts, Mapping):
            raise ValueError("dataset_facts must be a mapping of name -> value")
        facts = [[str(name), _json_scalar(value)] for name, value in dataset_facts.items()]

    data = {
        "format": 1,
        "title": title,
        "k": int(k),
        "reporting_length": int(reporting_length),
        "protected_record_count": record_count,
        "facts": facts,
        "record_count": int(len(synthetic)),
        "columns": columns,
        "pages": pages,
        "reportable": reportable_blocks,
        "evaluation": _prepare_evaluation(evaluation),
    }
    html = _fill_template(title, _json_for_script(data))
    logger.info("Showcase page rendered: %.2f MB", len(html.encode("utf-8")) / 1e6)
    return html


def extract_showcase_data(html: str) -> dict:
    """Return the data object embedded in a rendered showcase page.

    Args:
        html: A page produced by :func:`render_showcase_html`.

    Returns:
        The decoded JSON data (see the module docstring for its format).

    Raises:
        ValueError: If the page has no embedded showcase data.
    """
    match = _DATA_RE.search(html)
    if match is None:
        raise ValueError("no showcase data found in the page")
    data = json.loads(match.group(1))
    for column in data["columns"]:
        column["codes"] = _unpack_codes(column)
    for block in data["reportable"]:  # back to protected counts
        size, unit, flat = block["size"], block.pop("unit"), block["data"]
        for i in range(size, len(flat), size + 1):
            flat[i] *= unit
    return data


def parse_selections(selections: str) -> frozenset[tuple[str, str]]:
    """Parse a ``col:value;col:value`` selections string into a set.

    Args:
        selections: The ``selections`` cell of a reportable aggregates row.

    Returns:
        The set of ``(column, value)`` attributes; the order inside the string
        is irrelevant.

    Raises:
        ValueError: If an attribute is not of the form ``column:value`` or a
            column appears with the same value twice.
    """
    if not isinstance(selections, str) or selections.strip() == "":
        raise ValueError(f"empty or non-string selections: {selections!r}")
    attributes = []
    for part in selections.split(";"):
        pieces = part.split(":")
        if len(pieces) != 2 or pieces[0] == "" or pieces[1] == "":
            raise ValueError(
                f"malformed attribute {part!r} in selections {selections!r}; expected 'column:value'"
            )
        attributes.append((pieces[0], pieces[1]))
    result = frozenset(attributes)
    if len(result) != len(attributes):
        raise ValueError(f"repeated attribute in selections {selections!r}")
    return result


# --------------------------------------------------------------------------- #
# Encoding helpers
# --------------------------------------------------------------------------- #
def _check_positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _normalise_synthetic(synthetic: pd.DataFrame) -> pd.DataFrame:
    """Return the synthetic table with every cell a string ('' = empty)."""
    if not isinstance(synthetic, pd.DataFrame):
        raise ValueError("synthetic must be a pandas DataFrame")
    names = [str(c) for c in synthetic.columns]
    if len(set(names)) != len(names):
        raise ValueError(f"synthetic data has duplicated column names: {names}")
    for name in names:
        if ";" in name or ":" in name or name == "":
            raise ValueError(f"invalid column name {name!r} (must be non-empty without ';' or ':')")
    out = synthetic.copy()
    out.columns = names
    for name in names:
        col = out[name]
        if col.dtype != object or col.isna().any():
            col = col.astype(object).where(col.notna(), "")
        out[name] = col.astype(str)
    return out.reset_index(drop=True)


def _encode_columns(
    synthetic: pd.DataFrame,
) -> tuple[list[dict[str, Any]], dict[tuple[str, str], int]]:
    """Dictionary-encode each column.

    Returns:
        The column objects of the embedded data and a map
        ``(column, value) -> attribute id``.
    """
    columns: list[dict[str, Any]] = []
    value_index: dict[tuple[str, str], int] = {}
    offset = 0
    for name in synthetic.columns:
        cells = synthetic[name].to_numpy(dtype=object)
        uniques, inverse = np.unique(cells.astype(str), return_inverse=True)
        uniques = [str(u) for u in uniques]
        # np.unique sorts, so the empty string (if present) is first.
        if uniques and uniques[0] == "":
            values = uniques[1:]
            codes = inverse.astype(np.int64)  # '' -> 0, values[i] -> i + 1
        else:
            values = uniques
            codes = inverse.astype(np.int64) + 1
        for i, value in enumerate(values):
            value_index[(name, value)] = offset + i
        offset += len(values)
        columns.append({"name": name, "values": values, **_pack_codes(codes)})
    return columns, value_index


def _pack_codes(codes: np.ndarray) -> dict[str, Any]:
    """Per-record codes as base64 of little-endian unsigned integers of 1, 2 or 4 bytes
    (about a third of the size of a JSON list; decoded once by the page)."""
    width = 1 if codes.max(initial=0) < 1 << 8 else 2 if codes.max(initial=0) < 1 << 16 else 4
    raw = codes.astype(f"<u{width}").tobytes()
    return {"code_bytes": width, "codes": base64.b64encode(raw).decode("ascii")}


def _unpack_codes(column: dict[str, Any]) -> list[int]:
    """Inverse of :func:`_pack_codes`."""
    raw = base64.b64decode(column["codes"])
    return np.frombuffer(raw, dtype=f"<u{column['code_bytes']}").astype(int).tolist()


def _build_pages(
    column_names: list[str],
    columns: list[dict[str, Any]],
    report_pages: dict[str, list[str]] | None,
    report_visuals: dict[str, list[str]] | None,
) -> list[dict[str, Any]]:
    """Group the columns into pages and multi-column visuals.

    A visual is placed at the position of its first member column (in page
    order); its member columns are not shown on their own.
    """
    position = {name: i for i, name in enumerate(column_names)}

    def check_known(kind: str, group: str, names: object) -> list[str]:
        if isinstance(names, str) or not isinstance(names, (list, tuple)):
            raise ValueError(f"{kind} {group!r} must be a list of column names")
        for name in names:
            if name not in position:
                raise ValueError(
                    f"{kind} {group!r} names unknown column {name!r}; "
                    f"known columns: {column_names}"
                )
        return list(names)

    visual_of: dict[str, str] = {}
    visuals: dict[str, list[str]] = {}
    for visual, names in (report_visuals or {}).items():
        names = check_known("report_visuals entry", visual, names)
        if not names:
            raise ValueError(f"report_visuals entry {visual!r} lists no columns")
        for name in names:
            if name in visual_of:
                raise ValueError(
                    f"column {name!r} is in more than one visual "
                    f"({visual_of[name]!r} and {visual!r})"
                )
            visual_of[name] = visual
        visuals[str(visual)] = names

    page_lists: list[tuple[str, list[str]]] = []
    page_of: dict[str, str] = {}
    for page, names in (report_pages or {}).items():
        names = check_known("report_pages page", page, names)
        for name in names:
            if name in page_of:
                raise ValueError(
                    f"column {name!r} is on more than one page ({page_of[name]!r} and {page!r})"
                )
            page_of[name] = page
        page_lists.append((str(page), names))
    rest = [name for name in column_names if name not in page_of]
    if rest:
        default = DEFAULT_PAGE_NAME if report_pages else ALL_ATTRIBUTES_PAGE_NAME
        if any(page == default for page, _ in page_lists):
            page_lists = [(p, n + rest) if p == default else (p, n) for p, n in page_lists]
        else:
            page_lists.append((default, rest))

    placed_visuals: set[str] = set()
    pages = []
    for page, names in page_lists:
        items: list[dict[str, Any]] = []
        for name in names:
            visual = visual_of.get(name)
            if visual is None:
                items.append({"type": "column", "column": position[name]})
            elif visual not in placed_visuals:
                placed_visuals.add(visual)
                members = visuals[visual]
                items.append(
                    {
                        "type": "visual",
                        "name": visual,
                        "columns": [position[m] for m in members],
                        "labels": _piece_labels(members),
                    }
                )
        if items:
            pages.append({"name": page, "items": items})
    return pages


def _piece_labels(members: list[str]) -> list[str]:
    """Bar labels of a visual: the member names without their common ``<header>_`` prefix."""
    if len(members) < 2:
        prefix = members[0].rsplit("_", 1)[0] + "_" if "_" in members[0] else ""
    else:
        common = members[0]
        for name in members[1:]:
            while not name.startswith(common):
                common = common[:-1]
        cut = common.rfind("_")
        prefix = common[: cut + 1] if cut >= 0 else ""
    labels = [name[len(prefix):] if len(name) > len(prefix) else name for name in members]
    return labels


def _parse_reportable(reportable: pd.DataFrame) -> tuple[int | None, dict[frozenset, int]]:
    """Parse the reportable aggregates into ``(record_count, {attribute set: count})``."""
    if not isinstance(reportable, pd.DataFrame):
        raise ValueError("reportable must be a pandas DataFrame")
    missing = {"selections", "protected_count"} - set(map(str, reportable.columns))
    if missing:
        raise ValueError(
            f"reportable aggregates lack column(s) {sorted(missing)}; "
            f"got {list(map(str, reportable.columns))}"
        )
    record_count: int | None = None
    combos: dict[frozenset, int] = {}
    for selections, count in zip(reportable["selections"], reportable["protected_count"]):
        count = _parse_count(count, selections)
        if selections == _RECORD_COUNT_KEY:
            record_count = count
            continue
        attributes = parse_selections(selections)
        previous = combos.get(attributes)
        if previous is not None and previous != count:
            raise ValueError(
                f"combination {selections!r} is reported twice with different counts "
                f"({previous} and {count})"
            )
        combos[attributes] = count
    return record_count, combos


def _parse_count(count: object, selections: object) -> int:
    try:
        value = float(count)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value) or value != int(value) or value < 0:
        raise ValueError(f"invalid protected_count {count!r} for selections {selections!r}")
    return int(value)


def _encode_reportable(
    combos: dict[frozenset, int],
    value_index: dict[tuple[str, str], int],
) -> tuple[list[dict[str, Any]], int]:
    """Encode combinations as flat arrays of sorted attribute ids plus count.

    Combinations mentioning an attribute absent from the synthetic data are
    left out: the page can never ask for them.
    """
    by_size: dict[int, list[int]] = {}
    kept = 0
    unit = count_unit(combos.values())
    for attributes, count in combos.items():
        ids = []
        for attribute in attributes:
            attribute_id = value_index.get(attribute)
            if attribute_id is None:
                break
            ids.append(attribute_id)
        else:
            ids.sort()
            by_size.setdefault(len(ids), []).extend(ids + [count // unit])
            kept += 1
    dropped = len(combos) - kept
    if dropped:
        logger.info(
            "Showcase: %d reportable combinations mention attributes absent from the "
            "synthetic data and are not embedded", dropped,
        )
    return [{"size": size, "unit": unit, "data": by_size[size]} for size in sorted(by_size)], kept


def count_unit(counts) -> int:
    """Greatest common divisor of the counts (k for k-anonymous aggregates, else usually 1):
    counts are embedded divided by it, which keeps the page small."""
    unit = 0
    for count in counts:
        unit = math.gcd(unit, int(count))
    return unit or 1


def _json_scalar(value: object) -> object:
    """Convert a fact value to something JSON can hold (numbers stay numbers)."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        return value if math.isfinite(value) else str(value)
    return "" if value is None else str(value)


# --------------------------------------------------------------------------- #
# Evaluation view
# --------------------------------------------------------------------------- #
_SVG_DROP_RES = [
    re.compile(r"<\?xml.*?\?>", re.DOTALL),
    re.compile(r"<!DOCTYPE[^>\[]*(\[.*?\])?\s*>", re.DOTALL | re.IGNORECASE),
    re.compile(r"<!--.*?-->", re.DOTALL),
    re.compile(r"<metadata\b.*?</metadata>", re.DOTALL),
    re.compile(r"<script\b.*?</script\s*>", re.DOTALL | re.IGNORECASE),
]
_SVG_ID_RE = re.compile(r'\bid="([^"]+)"')


def _clean_svg(svg: str, prefix: str) -> str:
    """Prepare a (matplotlib) SVG document for inlining.

    Removes the XML prolog, DOCTYPE, comments, metadata and scripts, and
    prefixes every element id (and its ``#id`` references) so several charts
    can share one page without id clashes.
    """
    if not isinstance(svg, str):
        raise ValueError("evaluation chart SVGs must be strings")
    for pattern in _SVG_DROP_RES:
        svg = pattern.sub("", svg)
    svg = svg.strip()
    if not svg.startswith("<svg"):
        raise ValueError("evaluation chart is not an SVG document (no leading <svg> element)")
    ids = set(_SVG_ID_RE.findall(svg))
    if ids:
        alternatives = "|".join(re.escape(i) for i in sorted(ids, key=len, reverse=True))
        svg = re.sub(r'\bid="(%s)"' % alternatives, lambda m: f'id="{prefix}{m.group(1)}"', svg)
        svg = re.sub(
            r'(href="#|url\(#)(%s)(?=["\)])' % alternatives,
            lambda m: f"{m.group(1)}{prefix}{m.group(2)}",
            svg,
        )
    return svg


def _prepare_evaluation(evaluation: dict | None) -> dict | None:
    if evaluation is None:
        return None
    if not isinstance(evaluation, Mapping):
        raise ValueError("evaluation must be a mapping with 'metrics' and 'charts'")
    metrics = evaluation.get("metrics") or {}
    charts = evaluation.get("charts") or {}
    return {
        "metrics": [[str(name), str(value)] for name, value in metrics.items()],
        "charts": [
            [str(caption), _clean_svg(svg, f"ev{i}-")]
            for i, (caption, svg) in enumerate(charts.items())
        ],
    }


# --------------------------------------------------------------------------- #
# Template filling
# --------------------------------------------------------------------------- #
def _json_for_script(data: dict) -> str:
    """Serialise to compact JSON that is safe inside a <script> element."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def _read_asset(name: str) -> str:
    """Reads one page asset through importlib.resources, so it also works when the package is
    imported from a zip (spark-submit ``--py-files``) or an egg."""
    return resources.files(_ASSET_PACKAGE).joinpath(_ASSET_DIR_NAME).joinpath(name).read_text(encoding="utf-8")


def _html_escape(text: str) -> str:
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&#39;")
    )


def _fill_template(title: str, data_json: str) -> str:
    """Fill the template placeholders in one pass (so data cannot inject placeholders)."""
    template = _read_asset("showcase.html")
    script = _read_asset("showcase.js")
    style = _read_asset("showcase.css")
    if re.search(r"</script", script, re.IGNORECASE) or re.search(r"</style", style, re.IGNORECASE):
        raise ValueError("showcase assets must not contain closing script/style tags")
    replacements = {
        "/*__DATA__*/": data_json,
        "/*__SCRIPT__*/": script,
        "/*__STYLE__*/": style,
        "__TITLE__": _html_escape(title),
    }
    return _PLACEHOLDER_RE.sub(lambda m: replacements[m.group(0)], template)
