"""Render a release's evaluation tables as bar-chart PNG and SVG bytes.

This module has one job: turn the small evaluation tables of a k-synthetic
release (the pandas equivalents of the project's TSV outputs) into charts,
returned as ``{file name: bytes}``. It never writes files; the I/O layer does.

Chart titles use the metric names of :mod:`ksynth_spark.report.metrics`; shares
(count preservation, mean proportional error) are drawn as percentages. A count
axis whose positive values span more than two orders of magnitude is drawn on a
log scale (otherwise most bars of a column such as a country would be invisible
next to its largest value). A single-attribute chart is drawn only for a column
where the synthetic and published counts differ somewhere: where they are equal
by construction the chart would show two identical series.

It uses matplotlib's object API only (``Figure`` + Agg canvas, no ``pyplot``),
so it is safe to run headless on a Spark driver. Every bar gets a gid of the
form ``bar-<series>-<i>`` (``i`` = position along the category axis), which
shows up as ``id="bar-..."`` in the SVG output, and SVG text is kept as real
``<text>`` elements so titles and labels are searchable.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from io import BytesIO
from typing import TYPE_CHECKING, Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter, StrMethodFormatter

from ksynth_spark.report.metrics import COUNT_PRESERVATION, LEAKED, MEAN_PROPORTIONAL_ERROR

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

logger = logging.getLogger(__name__)

#: Most values drawn in one single-attribute chart (the largest by protected count).
MAX_ATTRIBUTE_VALUES = 40
#: Upper edge of the first count bucket, which holds counts in [0, edge].
FIRST_BUCKET_EDGE = 10
#: Longest value label drawn on a single-attribute chart before truncation.
MAX_LABEL_CHARS = 40
#: Resolution of the PNG output.
PNG_DPI = 110
#: A count axis uses a log scale when its largest positive value exceeds this many times its smallest.
LOG_SCALE_SPAN = 100

_SAVE_RC: dict[RcKeyType, Any] = {
    "svg.fonttype": "none",  # keep text as <text>, not glyph paths
    "svg.hashsalt": "ksynth-spark",  # deterministic clip-path ids
}

_COLUMNS = {
    "sensitive_rare_by_length": ["sen_combo_length", "combo_count", "rare_count", "rare_proportion"],
    "synthetic_leakage_by_length": ["syn_combo_length", "combo_count", "leak_count", "leak_proportion"],
    "preservation_by_length": [
        "syn_combo_length",
        "mean_combo_count",
        "count_preservation",
        "mean_proportional_error",
    ],
    "preservation_by_count": [
        "syn_count_bucket",
        "mean_combo_count",
        "mean_combo_length",
        "count_preservation",
        "mean_proportional_error",
    ],
    "single_attribute_counts": ["column", "value", "synthetic_count", "protected_count"],
}

_COUNT_FORMAT = "{:,.0f}"


@dataclass(frozen=True)
class _Series:
    """One series of bars.

    Attributes:
        key: Series name used in bar gids (``bar-<key>-<i>``).
        label: Legend label.
        values: One value per category; NaN is drawn as an empty bar.
    """

    key: str
    label: str
    values: Sequence[float]


#: Caption of every chart (its title without the privacy resolution), by stem after the prefix.
CAPTIONS = {
    "sensitive_rare_by_length": "Rare combinations in the sensitive data by length",
    "synthetic_leakage_by_length": f"{LEAKED.name} by length",
    "preservation_by_length": f"{COUNT_PRESERVATION.name} by length",
    "preservation_by_count": f"{COUNT_PRESERVATION.name} by synthetic count",
    "proportional_error_by_count": f"{MEAN_PROPORTIONAL_ERROR.name} by synthetic count",
}
_SINGLE_ATTRIBUTE_STEM = "single_attribute_counts"


def chart_captions(prefix: str, single_attribute_columns: Sequence[str] = ()) -> dict[str, str]:
    """Caption of every chart this module can render for a release, by stem ``<prefix>_<...>``
    (single-attribute charts for ``single_attribute_columns``)."""
    captions = {f"{prefix}_{stem}": caption for stem, caption in CAPTIONS.items()}
    names = sorted({str(c) for c in single_attribute_columns})
    for name, safe in zip(names, _safe_names(names), strict=True):
        captions[f"{prefix}_{_SINGLE_ATTRIBUTE_STEM}_{safe}"] = _single_attribute_caption(name)
    return captions


def _single_attribute_caption(column: str) -> str:
    return f"Synthetic and published counts: {column}"


def render_evaluation_charts(
    prefix: str,
    k: int,
    *,
    sensitive_rare_by_length: pd.DataFrame | None = None,
    synthetic_leakage_by_length: pd.DataFrame | None = None,
    preservation_by_length: pd.DataFrame | None = None,
    preservation_by_count: pd.DataFrame | None = None,
    single_attribute_counts: pd.DataFrame | None = None,
) -> dict[str, bytes]:
    """Render every evaluation chart whose input table is present.

    Args:
        prefix: File-name prefix of the release; every stem starts with it.
        k: Privacy resolution, shown in every title as ``k = <k>``.
        sensitive_rare_by_length: Columns ``sen_combo_length, combo_count,
            rare_count, rare_proportion``.
        synthetic_leakage_by_length: Columns ``syn_combo_length, combo_count,
            leak_count, leak_proportion``.
        preservation_by_length: Columns ``syn_combo_length, mean_combo_count,
            count_preservation, mean_proportional_error``.
        preservation_by_count: Columns ``syn_count_bucket, mean_combo_count,
            mean_combo_length, count_preservation, mean_proportional_error``;
            any row order (buckets are drawn ascending).
        single_attribute_counts: Columns ``column, value, synthetic_count,
            protected_count``; one chart per distinct ``column`` whose
            synthetic and published counts differ for some value.

    Returns:
        ``{file name: content}`` with both ``<stem>.png`` and ``<stem>.svg``
        for every chart rendered. A ``None`` or empty table renders nothing.

    Raises:
        ValueError: If ``k`` is not positive or a table lacks required columns.
    """
    if k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    tables = {
        "sensitive_rare_by_length": sensitive_rare_by_length,
        "synthetic_leakage_by_length": synthetic_leakage_by_length,
        "preservation_by_length": preservation_by_length,
        "preservation_by_count": preservation_by_count,
        "single_attribute_counts": single_attribute_counts,
    }
    builders: dict[str, Callable[[str, int, pd.DataFrame], dict[str, Figure]]] = {
        "sensitive_rare_by_length": _rare_by_length,
        "synthetic_leakage_by_length": _leakage_by_length,
        "preservation_by_length": _preservation_by_length,
        "preservation_by_count": _by_count_bucket,
        "single_attribute_counts": _single_attribute,
    }
    files: dict[str, bytes] = {}
    for name, table in tables.items():
        if table is None or len(table) == 0:
            logger.info("Skipping %s chart(s): no input table", name)
            continue
        _check_columns(name, table)
        for stem, fig in builders[name](prefix, k, table).items():
            for ext, content in _to_bytes(fig).items():
                files[f"{stem}.{ext}"] = content
            logger.debug("Rendered chart %s", stem)
    logger.info("Rendered %d evaluation chart(s) for %s", len(files) // 2, prefix)
    return files


# --------------------------------------------------------------------------- charts


def _rare_by_length(prefix: str, k: int, table: pd.DataFrame) -> dict[str, Figure]:
    df = _sorted_numeric(table, "sen_combo_length")
    fig = _bar_figure(
        title=f"{CAPTIONS['sensitive_rare_by_length']} (k = {k})",
        categories=_int_labels(df["sen_combo_length"]),
        series=[
            _Series("all", "All combinations", _numbers(df["combo_count"])),
            _Series("rare", f"Rare combinations (count < {k})", _numbers(df["rare_count"])),
        ],
        category_label="Combination length",
        value_label="Distinct combinations in sensitive data",
        counts=True,
    )
    return {f"{prefix}_sensitive_rare_by_length": fig}


def _leakage_by_length(prefix: str, k: int, table: pd.DataFrame) -> dict[str, Figure]:
    df = _sorted_numeric(table, "syn_combo_length")
    fig = _bar_figure(
        title=f"{CAPTIONS['synthetic_leakage_by_length']} (k = {k})",
        categories=_int_labels(df["syn_combo_length"]),
        series=[_Series("leak", LEAKED.name, _numbers(df["leak_count"]))],
        category_label="Combination length",
        value_label=LEAKED.name,
        annotate=_COUNT_FORMAT.format,
        counts=True,
    )
    return {f"{prefix}_synthetic_leakage_by_length": fig}


def _preservation_by_length(prefix: str, k: int, table: pd.DataFrame) -> dict[str, Figure]:
    df = _sorted_numeric(table, "syn_combo_length")
    fig = _bar_figure(
        title=f"{CAPTIONS['preservation_by_length']} (k = {k})",
        categories=_int_labels(df["syn_combo_length"]),
        series=[_Series("preservation", COUNT_PRESERVATION.name, _numbers(df["count_preservation"]))],
        category_label="Combination length",
        value_label=COUNT_PRESERVATION.name,
        annotate=_share,
        unit_interval=True,
    )
    return {f"{prefix}_preservation_by_length": fig}


def _by_count_bucket(prefix: str, k: int, table: pd.DataFrame) -> dict[str, Figure]:
    df = _sorted_numeric(table, "syn_count_bucket")
    buckets = [_bucket_label(edge) for edge in df["syn_count_bucket"]]
    axis_label = "Synthetic count of the combination"
    preservation = _bar_figure(
        title=f"{CAPTIONS['preservation_by_count']} (k = {k})",
        categories=buckets,
        series=[_Series("preservation", COUNT_PRESERVATION.name, _numbers(df["count_preservation"]))],
        category_label=axis_label,
        value_label=COUNT_PRESERVATION.name,
        annotate=_share,
        unit_interval=True,
    )
    error = _bar_figure(
        title=f"{CAPTIONS['proportional_error_by_count']} (k = {k})",
        categories=buckets,
        series=[_Series("error", MEAN_PROPORTIONAL_ERROR.name, _numbers(df["mean_proportional_error"]))],
        category_label=axis_label,
        value_label=MEAN_PROPORTIONAL_ERROR.name,
        annotate=_share,
        shares=True,
    )
    return {
        f"{prefix}_preservation_by_count": preservation,
        f"{prefix}_proportional_error_by_count": error,
    }


def columns_with_equal_counts(table: pd.DataFrame) -> list[str]:
    """Columns of a ``single_attribute_counts`` table whose synthetic and published counts are
    equal for every value (sorted); no single-attribute chart is drawn for them."""
    synthetic = pd.to_numeric(table["synthetic_count"], errors="coerce")
    published = pd.to_numeric(table["protected_count"], errors="coerce")
    equal = (synthetic == published).groupby(table["column"].astype(str)).all()
    return sorted(str(name) for name in equal[equal].index)


def _single_attribute(prefix: str, k: int, table: pd.DataFrame) -> dict[str, Figure]:
    figures: dict[str, Figure] = {}
    names = sorted(table["column"].astype(str).unique())
    equal = set(columns_with_equal_counts(table))
    if equal:
        logger.info("No single-attribute chart for %d of %d column(s): their synthetic and published counts are "
                    "equal for every value", len(equal), len(names))
    for name, safe in zip(names, _safe_names(names), strict=True):
        if name in equal:
            continue
        df = table[table["column"].astype(str) == name].copy()
        df["_protected"] = _numbers(df["protected_count"])
        df["_value"] = [_value_label(v) for v in df["value"]]
        df = df.sort_values(["_protected", "_value"], ascending=[False, True], kind="stable")
        total = len(df)
        title = f"{_single_attribute_caption(name)} (k = {k})"
        if total > MAX_ATTRIBUTE_VALUES:
            df = df.head(MAX_ATTRIBUTE_VALUES)
            title += f"\ntop {MAX_ATTRIBUTE_VALUES} of {total} values"
        figures[f"{prefix}_{_SINGLE_ATTRIBUTE_STEM}_{safe}"] = _bar_figure(
            title=title,
            categories=list(df["_value"]),
            series=[
                _Series("synthetic", "Synthetic count", _numbers(df["synthetic_count"])),
                _Series("protected", "Published count", list(df["_protected"])),
            ],
            category_label=name,
            value_label="Records",
            horizontal=True,
            counts=True,
        )
    return figures


# --------------------------------------------------------------------------- shared drawing


def _bar_figure(
    *,
    title: str,
    categories: Sequence[str],
    series: Sequence[_Series],
    category_label: str,
    value_label: str,
    horizontal: bool = False,
    annotate: Callable[[float], str] | None = None,
    unit_interval: bool = False,
    shares: bool = False,
    counts: bool = False,
) -> Figure:
    """Draw a (grouped) bar chart on a fresh figure.

    Args:
        title: Axes title.
        categories: Category labels, in drawing order (left to right, or top
            to bottom when horizontal).
        series: One or more series; each bar gets gid ``bar-<key>-<i>``.
        category_label: Label of the category axis.
        value_label: Label of the value axis.
        horizontal: Draw horizontal bars (for many or long category labels).
        annotate: Formats the value label of each bar (NaN -> "n/a").
        unit_interval: Value axis shows shares from 0 to 100 % (with headroom
            for annotations).
        shares: Value axis shows shares as percentages (any range).
        counts: Value axis shows counts: integer ticks with thousands
            separators, on a log scale when the positive values span more
            than :data:`LOG_SCALE_SPAN`.

    Returns:
        The figure, laid out and attached to an Agg canvas.
    """
    n_cat, n_ser = len(categories), len(series)
    if horizontal:
        figsize = (9.0, max(3.2, 1.6 + 0.28 * n_cat * max(1.0, 0.6 * n_ser)))
    else:
        figsize = (min(16.0, max(6.4, 1.5 + 0.5 * n_cat * n_ser)), 4.8)
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()

    all_values = np.concatenate([np.asarray(s.values, dtype=float) for s in series]) if series else np.zeros(0)
    positive = all_values[np.isfinite(all_values) & (all_values > 0)]
    log_scale = counts and positive.size > 0 and positive.max() > LOG_SCALE_SPAN * positive.min()
    if log_scale:
        (ax.set_xscale if horizontal else ax.set_yscale)("log")
        value_label += " (log scale)"

    positions = np.arange(n_cat, dtype=float)
    width = 0.8 / n_ser
    draw = ax.barh if horizontal else ax.bar
    for j, s in enumerate(series):
        values = np.asarray(s.values, dtype=float)
        offset = (j - (n_ser - 1) / 2) * width
        bars = draw(positions + offset, np.nan_to_num(values), width, label=s.label)
        for i, patch in enumerate(bars.patches):
            patch.set_gid(f"bar-{s.key}-{i}")
        if annotate:
            labels = ["n/a" if math.isnan(v) else annotate(v) for v in values]
            ax.bar_label(bars, labels=labels, padding=2, fontsize=9)
    vmax = float(np.nanmax(all_values)) if np.isfinite(all_values).any() else 0.0

    cat_axis, val_axis = (ax.yaxis, ax.xaxis) if horizontal else (ax.xaxis, ax.yaxis)
    cat_axis.set_ticks(positions, labels=categories)
    set_cat_lim, set_val_lim = (ax.set_ylim, ax.set_xlim) if horizontal else (ax.set_xlim, ax.set_ylim)
    set_cat_lim(-0.6, n_cat - 0.4)
    if unit_interval:
        set_val_lim(0.0, 1.1 if annotate else 1.0)
        val_axis.set_ticks(np.linspace(0.0, 1.0, 6))
    elif log_scale:
        bottom = 10.0 ** math.floor(math.log10(positive.min())) / 2  # below the smallest bar, off the decade ticks
        set_val_lim(bottom, vmax * (4.0 if annotate else 2.0))
    else:
        top = max(vmax, 1.0) if counts or vmax <= 0 else vmax
        set_val_lim(0.0, top * (1.15 if annotate else 1.05))
    if unit_interval or shares:
        val_axis.set_major_formatter(FuncFormatter(lambda x, _: _share(x)))
    elif log_scale:
        val_axis.set_major_locator(LogLocator(base=10))
        val_axis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
        val_axis.set_minor_formatter(NullFormatter())
    elif counts:
        val_axis.set_major_locator(MaxNLocator(integer=True))
        val_axis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))

    if horizontal:
        ax.invert_yaxis()  # first category on top
        ax.tick_params(axis="y", labelsize=9 if n_cat <= 20 else 8)
        ax.set_xlabel(value_label)
        ax.set_ylabel(category_label)
        ax.grid(axis="x", alpha=0.3)
    else:
        if _labels_too_wide(categories, figsize[0]):
            for label in ax.get_xticklabels():
                label.set(rotation=35, horizontalalignment="right", rotation_mode="anchor", fontsize=8)
        ax.set_xlabel(category_label)
        ax.set_ylabel(value_label)
        ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    if n_ser > 1:
        # Between title and axes, so it never hides a bar.
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=n_ser, frameon=False, fontsize=9)
        ax.set_title(title, pad=24)
    else:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def _to_bytes(fig: Figure) -> dict[str, bytes]:
    """Serialise a figure as PNG and SVG bytes (deterministic metadata)."""
    out: dict[str, bytes] = {}
    with matplotlib.rc_context(_SAVE_RC):
        for ext, metadata in (("png", {"Software": None}), ("svg", {"Date": None})):
            buffer = BytesIO()
            fig.savefig(buffer, format=ext, dpi=PNG_DPI, metadata=metadata)
            out[ext] = buffer.getvalue()
    return out


# --------------------------------------------------------------------------- helpers


def _share(value: float) -> str:
    """A fraction as a whole percentage (``0.97`` -> ``97 %``)."""
    return f"{100 * value:.0f} %"


def _check_columns(name: str, table: pd.DataFrame) -> None:
    missing = [c for c in _COLUMNS[name] if c not in table.columns]
    if missing:
        raise ValueError(f"{name} table lacks column(s) {missing}; has {list(table.columns)}")


def _numbers(column: pd.Series) -> list[float]:
    return list(pd.to_numeric(column, errors="coerce").astype(float))


def _sorted_numeric(table: pd.DataFrame, key: str) -> pd.DataFrame:
    """Rows sorted ascending by a numeric key column (rows with no key dropped)."""
    df = table.assign(**{key: pd.to_numeric(table[key], errors="coerce")})
    return df.dropna(subset=[key]).sort_values(key, kind="stable")


def _int_labels(column: pd.Series) -> list[str]:
    return [str(int(v)) for v in column]


def _bucket_label(edge: float) -> str:
    """Readable label of count bucket ``edge``: ``[0, 10]`` or ``(e/2, e]``."""
    edge = int(edge)
    if edge <= FIRST_BUCKET_EDGE:
        return f"[0, {edge}]"
    return f"({edge // 2}, {edge}]"


def _value_label(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "(null)"
    text = str(value)
    if text == "":
        return "(empty)"
    return text if len(text) <= MAX_LABEL_CHARS else text[: MAX_LABEL_CHARS - 1] + "\u2026"


def _safe_names(names: Sequence[str]) -> list[str]:
    """File-name-safe versions of ``names``, made unique with ``_2``, ``_3``... suffixes."""
    used: set[str] = set()
    result = []
    for name in names:
        base = re.sub(r"[^A-Za-z0-9_-]", "_", name) or "column"
        candidate, n = base, 2
        while candidate in used:
            candidate, n = f"{base}_{n}", n + 1
        used.add(candidate)
        result.append(candidate)
    return result


def _labels_too_wide(labels: Sequence[str], fig_width_in: float) -> bool:
    """Whether the longest category label is wider than its slot on the x axis.

    Estimates 0.07 in per character at the default 10 pt font and about
    1.2 in of the figure width taken by the value axis and margins.
    """
    if not labels:
        return False
    slot_in = (fig_width_in - 1.2) / len(labels)
    return max(len(label) for label in labels) * 0.07 > 0.9 * slot_in
