"""The one-page plain-words summary of a release (``release/<prefix>_summary.md``) and its privacy statement."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ksynth_spark.config import Config

if TYPE_CHECKING:
    from ksynth_spark.evaluate import EvaluationResult


def privacy_statement(config: Config, headline: dict) -> str:
    """The plain-words privacy statement of the summary (k filled in, mode-aware)."""
    k, length = config.k, headline["reporting_length"]
    if config.synthesis_mode == "aggregate_seeded" and config.dp_aggregates:
        return ("This synthetic dataset was generated from differentially private aggregates "
                f"(epsilon = {config.noise_epsilon:g}); its protection is differential privacy, not a group size k.")
    if headline["unsupported_combinations"] or headline["leakage_total"]:
        return (f"WARNING: {headline['unsupported_combinations']} combination(s) of up to {length} attributes in this "
                f"synthetic dataset describe fewer than {k} individuals in the sensitive data "
                f"({headline['leakage_total']} of them are rare in both). Do not publish it.")
    statement = (f"Every combination of attributes in this synthetic dataset describes a group of at least {k} "
                 "individuals in the sensitive data")
    if config.synthesis_mode == "aggregate_seeded":
        return (statement + f", for combinations of up to {length} attributes (the reporting length) only; "
                "longer combinations carry no such guarantee.")
    return statement + "."


def summary_markdown(config: Config, result: EvaluationResult, chart_files: list[str]) -> str:
    """One-page plain-words summary of the release (``release/<prefix>_summary.md``)."""
    h = result.headline
    records_in_note = ("record count as published in the differentially private aggregates" if config.dp_aggregates
                       else "sensitive records, rounded down to a multiple of k")
    lines = [
        f"# Synthetic data release: {config.prefix}",
        "",
        f"- Privacy resolution k: {h['k']}",
        f"- Reporting length (longest combination counted): {h['reporting_length']}",
        f"- Synthesis mode: {h['synthesis_mode']}",
        f"- Records in ({records_in_note}): {h['records_in']:,}",
        f"- Records out (synthetic records): {h['records_out']:,}",
        "",
        "## Privacy",
        "",
        privacy_statement(config, h),
        "",
        "Leakage (combinations rare in the sensitive data that are also rare in the synthetic data) by length: "
        + ", ".join(f"length {l}: {n}" for l, n in h["leakage_by_length"].items()) + ".",
        "",
        "## Utility",
        "",
        "| length | count preservation | mean proportional error |",
        "| --- | --- | --- |",
    ]
    for row in result.preservation_by_length.itertuples(index=False):
        lines.append(f"| {row.syn_combo_length} | {row.count_preservation:.4f} | {row.mean_proportional_error:.4f} |")
    lines += [
        "",
        f"- Mean proportional error (mean over count buckets): {h['mean_proportional_error']:.4f}",
        f"- Suppressed combinations (sensitive combinations missing from the synthetic data): {h['suppressed_pct']:.2f} %",
        f"- Fabricated combinations (synthetic combinations absent from the sensitive data): {h['fabricated_pct']:.2f} %",
        "",
        "## Charts",
        "",
    ]
    stems: dict[str, list[str]] = {}
    for name in chart_files:
        stem, _, ext = name.rpartition(".")
        stems.setdefault(stem, []).append(ext)
    lines += [f"- {stem} ({', '.join(f'.{e}' for e in sorted(exts, reverse=True))})" for stem, exts in stems.items()]
    return "\n".join(lines) + "\n"
