"""Render the offline data showcase page from a release's releasable numbers and words.

The showcase is a single self-contained HTML file (script, style and data all inline; no
network access of any kind) that lets policy makers explore the synthetic data side by side
with the published counts (k-anonymous or differentially private) of the reportable
aggregates. Its numbers come from a :class:`~.showcase_data.ShowcaseRelease` (embedded as
distinct records or as combination counts, whichever is smaller, see :mod:`.showcase_data`)
and every sentence on it from the release's facts (:mod:`.showcase_text`): the page's script
holds no claim of its own.

This module is pure (no Spark). The page itself lives in ``showcase_assets/``: a small HTML
template, one script and one style sheet, filled in a single pass.

Embedded data (JSON inside ``<script type="application/json" id="showcase-data">``; ``<``,
``>`` and ``&`` are written as ``\\u003c`` etc. so no value can close the script element)::

    {
      "format": 2, "title": str, "k": int, "reporting_length": int, "dp": bool,
      "text": {"headline": str, "details": [str], "how_to_read": [[question, answer]],
               "estimate_label", "actual_label", "actual_short", "count_name", "missing_note": str,
               "evaluation_note": str | null},
      "facts": [[name, value, note], ...],           # header figures and what each counts
      "published_record_count": int | null, "synthetic_record_count": int,
      "columns": [{"name": str, "values": [str, ...]}],   # page attribute id = offset(column) + index
      "pages": [{"name": str, "items": [item, ...]}],
          # item = {"type": "column", "column": int}
          #      | {"type": "visual", "name": str, "columns": [int], "labels": [str]}
      "embedding": "records" | "combinations",
      "embedding_sizes": {"records": int, "combinations": int},   # bytes of base64 text
      "records": null | {"count": n, "codes": [packed per column],  # 0 = empty, i + 1 = values[i]
                         "weights": packed},                      # copies of each distinct record
      "combinations": [{"size": l, "count": n, "ids": packed (n x l ascending page ids),
                        "unit": u, "actuals": packed (published count // u + 1, 0 = none),
                        "estimates": packed (synthetic counts; combinations embedding only)}],
      "evaluation": null | {"metrics": [[name, value]], "charts": [[caption, svg_text]]}
    }

``packed`` = ``{"bytes": 1|2|4|8, "data": base64 of little-endian unsigned integers}``.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import re
from collections.abc import Mapping
from dataclasses import replace
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

from ksynth_spark.report.privacy import ReleaseFacts
from ksynth_spark.report.showcase_data import (
    EMBEDDINGS,
    EmbeddingChoice,
    ShowcaseRelease,
    choose_embedding,
    combinations_from_selections,
    count_combinations,
    decode_numbers,
    embedded_numbers,
    parse_selections,
    records_from_frame,
)
from ksynth_spark.report.showcase_text import page_texts

logger = logging.getLogger(__name__)

__all__ = ["render_showcase", "render_showcase_html", "extract_showcase_data", "parse_selections",
           "DEFAULT_PAGE_NAME", "ALL_ATTRIBUTES_PAGE_NAME"]

#: Name of the page that receives every column not listed in ``report_pages``.
DEFAULT_PAGE_NAME = "Other attributes"
#: Name of the single page used when no ``report_pages`` are given.
ALL_ATTRIBUTES_PAGE_NAME = "All attributes"

#: Package-relative folder of the page assets, read with importlib.resources (works from a zip).
_ASSET_PACKAGE, _ASSET_DIR_NAME = __package__ or "ksynth_spark.report", "showcase_assets"
_PLACEHOLDER_RE = re.compile(r"/\*__(?:DATA|SCRIPT|STYLE)__\*/|__TITLE__")
_DATA_RE = re.compile(r'<script type="application/json" id="showcase-data">(.*?)</script>', re.DOTALL)


# --------------------------------------------------------------------------- #
# Public API
# --------------------------------------------------------------------------- #
def render_showcase(
    release: ShowcaseRelease,
    *,
    title: str,
    facts: ReleaseFacts,
    embedding: str | EmbeddingChoice = "auto",
    evaluation: dict | None = None,
    evaluation_ran: bool = False,
    exact_record_count: bool = False,
    report_pages: dict[str, list[str]] | None = None,
    report_visuals: dict[str, list[str]] | None = None,
) -> str:
    """Render the self-contained showcase page of a release.

    Args:
        release: The page's numbers (vocabulary, published counts, distinct records and/or
            synthetic combination counts up to ``facts.reporting_length``).
        title: Page title (shown as heading and in the browser tab).
        facts: What the release did: every sentence on the page is derived from them.
        embedding: ``"records"``, ``"combinations"`` or ``"auto"`` (the smaller page; the
            combinations when the release has no records), or the choice already made by the
            caller (:func:`~.showcase_data.choose_embedding`).
        evaluation: ``{"metrics": {name: value}, "charts": {caption: svg_text}}`` shown in the
            second view, or None. SVG texts are inlined after removing any XML prolog, DOCTYPE,
            comments, metadata and scripts, with element ids made unique per chart.
        evaluation_ran: An evaluation of the release exists even if ``evaluation`` is None
            (e.g. restricted in DP releases): the page says so.
        exact_record_count: The published record count is exact (DP without a noisy count).
        report_pages: Page name -> column names (tabs); unlisted columns go to a default page.
        report_visuals: Visual name -> column names shown together in one chart.

    Returns:
        The complete HTML document.

    Raises:
        ValueError: On invalid parameters or unknown/duplicated columns in pages or visuals.
    """
    _check_positive_int("k", facts.k)
    _check_positive_int("reporting_length", facts.reporting_length)
    if not isinstance(title, str):
        raise ValueError(f"title must be a string, got {type(title).__name__}")
    length = facts.reporting_length
    vocabulary = release.vocabulary
    facts = replace(facts, records_in=release.published_record_count if facts.records_in is None else facts.records_in,
                    records_out=release.synthetic_record_count if facts.records_out is None else facts.records_out)
    if release.synthetic is None and release.records is not None:
        release = replace(release, synthetic=count_combinations(vocabulary, release.records, length))
    if release.synthetic is None:
        raise ValueError("the release needs distinct records or synthetic combination counts")
    records = release.records
    if isinstance(embedding, EmbeddingChoice):
        choice = embedding
    else:
        if embedding not in ("auto", *EMBEDDINGS):
            raise ValueError(f"embedding must be 'auto', 'records' or 'combinations', got {embedding!r}")
        if records is None and embedding == "records":
            raise ValueError("the records embedding needs the distinct synthetic records")
        n_distinct = len(records.weights) if records is not None else 0
        max_copies = int(records.weights.max(initial=0)) if records is not None else 0
        choice = choose_embedding(vocabulary, release.reportable, release.synthetic, n_distinct, max_copies,
                                  embedding if records is not None else "combinations")
        if records is None:  # the records were not gathered: their size is unknown
            choice = replace(choice, records_bytes=None)
    if choice.name == "records" and records is None:
        raise ValueError("the records embedding needs the distinct synthetic records")
    pages = _build_pages(list(vocabulary.columns), report_pages, report_visuals)
    prepared = _prepare_evaluation(evaluation)
    texts = page_texts(facts, published_record_count=release.published_record_count,
                       synthetic_record_count=release.synthetic_record_count,
                       exact_record_count=exact_record_count, evaluation_shown=prepared is not None,
                       evaluation_ran=evaluation_ran or prepared is not None)
    data = {
        "format": 2,
        "title": title,
        "k": int(facts.k),
        "reporting_length": int(length),
        "dp": bool(facts.dp),
        "text": texts.as_data(),
        "facts": [[f.name, _json_scalar(f.value), f.note] for f in texts.facts],
        "published_record_count": release.published_record_count,
        "synthetic_record_count": int(release.synthetic_record_count),
        "columns": [{"name": name, "values": list(values)}
                    for name, values in zip(vocabulary.columns, vocabulary.values, strict=True)],
        "pages": pages,
        "embedding": choice.name,
        "embedding_sizes": {"records": choice.records_bytes, "combinations": choice.combinations_bytes},
        **embedded_numbers(release, choice.name, length),
        "evaluation": prepared,
    }
    html = _fill_template(title, _json_for_script(data))
    logger.info("Showcase page rendered (%s embedding): %.2f MB", choice.name, len(html.encode("utf-8")) / 1e6)
    return html


def render_showcase_html(
    synthetic: pd.DataFrame,
    reportable: pd.DataFrame,
    *,
    title: str,
    facts: ReleaseFacts,
    embedding: str = "auto",
    evaluation: dict | None = None,
    evaluation_ran: bool = False,
    count_column: str = "protected_count",
    report_pages: dict[str, list[str]] | None = None,
    report_visuals: dict[str, list[str]] | None = None,
) -> str:
    """Render the page from the release files' tables (for tools, notebooks and tests).

    Args:
        synthetic: Synthetic microdata, one row per record; every cell a string, ``""`` (or
            NaN/None) meaning "no attribute".
        reportable: Reportable aggregates: ``selections`` and ``count_column``; the
            ``record_count`` row carries the published number of records.
        title, facts, embedding, evaluation, evaluation_ran, report_pages, report_visuals: As
            for :func:`render_showcase`.
        count_column: Header of the count column (``count`` when the exact number of records
            is published).

    Returns:
        The complete HTML document.

    Raises:
        ValueError: On invalid parameters or malformed reportable selections or counts.
    """
    vocabulary, records = records_from_frame(synthetic)
    record_count, published = combinations_from_selections(reportable, vocabulary, count_column)
    release = ShowcaseRelease(vocabulary, published, record_count, int(records.weights.sum()), records=records)
    return render_showcase(release, title=title, facts=facts, embedding=embedding, evaluation=evaluation,
                           evaluation_ran=evaluation_ran, exact_record_count=count_column == "count",
                           report_pages=report_pages, report_visuals=report_visuals)


def extract_showcase_data(html: str) -> dict:
    """Return the data object embedded in a rendered showcase page, its packed arrays decoded
    (see :func:`~.showcase_data.decode_numbers`).

    Raises:
        ValueError: If the page has no embedded showcase data.
    """
    match = _DATA_RE.search(html)
    if match is None:
        raise ValueError("no showcase data found in the page")
    return decode_numbers(json.loads(match.group(1)))


# --------------------------------------------------------------------------- #
# Helpers
# --------------------------------------------------------------------------- #
def _check_positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _build_pages(
    column_names: list[str],
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
                raise ValueError(f"report_visuals lists column {name!r} in both {visual_of[name]!r} and "
                                 f"{visual!r}: a column can be in one visual only")
            visual_of[name] = visual
        visuals[str(visual)] = names

    page_lists: list[tuple[str, list[str]]] = []
    page_of: dict[str, str] = {}
    for page, names in (report_pages or {}).items():
        names = check_known("report_pages page", page, names)
        for name in names:
            if name in page_of:
                raise ValueError(f"report_pages lists column {name!r} in both {page_of[name]!r} and {page!r}: "
                                 "a column can be on one page only")
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
            in_visual = visual_of.get(name)
            if in_visual is None:
                items.append({"type": "column", "column": position[name]})
            elif in_visual not in placed_visuals:
                placed_visuals.add(in_visual)
                members = visuals[in_visual]
                items.append(
                    {
                        "type": "visual",
                        "name": in_visual,
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


def _json_scalar(value: object) -> object:
    """Convert a fact value to something JSON can hold (numbers stay numbers)."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        return value if math.isfinite(value) else str(value)
    return None if value is None else str(value)


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
        svg = re.sub(rf'\bid="({alternatives})"', lambda m: f'id="{prefix}{m.group(1)}"', svg)
        svg = re.sub(
            rf'(href="#|url\(#)({alternatives})(?=["\)])',
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
