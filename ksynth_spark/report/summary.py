"""The one-page plain-words summary of a release (``<prefix>_summary.md``).

Its one job is to lay out, as Markdown, what the renderers of the release say: the facts of the
run, the privacy statement of :mod:`ksynth_spark.report.privacy`, the "How to read this release"
answers and metric meanings of :mod:`ksynth_spark.report.explain`, the evaluation figures under
the names of :mod:`ksynth_spark.report.metrics`, and the charts written next to it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ksynth_spark.report.explain import METRICS, how_to_read
from ksynth_spark.report.metrics import (
    ALL_METRICS,
    COUNT_PRESERVATION,
    EXPANSION_RATIO,
    LEAKED,
    MEAN_PROPORTIONAL_ERROR,
    EvaluationHeadline,
    format_value,
)
from ksynth_spark.report.privacy import ReleaseFacts, privacy_statement


def published_record_count_note(facts: ReleaseFacts) -> str:
    """What the published record count is, in plain words."""
    if not facts.dp:
        return f"the number of sensitive records rounded down to a multiple of {facts.k}"
    if facts.exact_record_count:
        return "the exact number of sensitive records, published without noise"
    return "the number of sensitive records with noise added"


def summary_markdown(prefix: str, facts: ReleaseFacts, headline: EvaluationHeadline, charts: Mapping[str, str],
                     notes: Sequence[str] = ()) -> str:
    """The summary of a release.

    Args:
        prefix: The release's file-name prefix (its title).
        facts: What the run did (with its evaluation figures).
        headline: The evaluation's headline figures.
        charts: Chart file name -> caption, for the charts written next to the summary.
        notes: Further sentences about the evaluation outputs (e.g. charts left out).
    """
    lines = [f"# Synthetic data release: {prefix}", ""]
    lines += _facts(facts, headline)
    statement = privacy_statement(facts)
    lines += ["", "## Privacy", "", f"**{statement.headline}**", ""]
    lines += [f"- {detail}" for detail in statement.details]
    lines += ["", "## How to read this release", ""]
    for answer in how_to_read(facts):
        lines += [f"### {answer.question}", "", answer.answer, ""]
    lines += ["### What do the metrics mean?", ""]
    lines += [f"- **{metric.name}**: {metric.meaning}" for metric in METRICS]
    lines += ["", "## Evaluation", ""]
    if facts.dp:
        lines += ["These figures compare the synthetic data with the sensitive data: keep them restricted.", ""]
    lines += ["| metric | value |", "| --- | --- |"]
    lines += [f"| {metric.name} | {metric.format(headline.value(metric))} |" for metric in ALL_METRICS]
    lines += ["", "### By combination length", "",
              f"| length | {LEAKED.name.lower()} | {COUNT_PRESERVATION.name.lower()} | "
              f"{MEAN_PROPORTIONAL_ERROR.name.lower()} |", "| --- | --- | --- | --- |"]
    for length in sorted(headline.count_preservation_by_length):
        lines.append(f"| {length} | {LEAKED.format(headline.leaked_by_length.get(length, 0))} | "
                     f"{COUNT_PRESERVATION.format(headline.count_preservation_by_length[length])} | "
                     f"{MEAN_PROPORTIONAL_ERROR.format(headline.mean_proportional_error_by_length.get(length))} |")
    lines.append(f"| all lengths | {LEAKED.format(headline.leaked_rare_combinations)} | "
                 f"{COUNT_PRESERVATION.format(headline.count_preservation)} | "
                 f"{MEAN_PROPORTIONAL_ERROR.format(headline.mean_proportional_error)} |")
    lines += ["", "The values of every length are averaged over all evaluated combinations of that length; the "
              "last row over the evaluated combinations of every length.", ""]
    lines += list(notes) + ([""] if notes else [])
    lines += _charts(charts)
    return "\n".join(lines).rstrip("\n") + "\n"


def _facts(facts: ReleaseFacts, headline: EvaluationHeadline) -> list[str]:
    if facts.dp:
        privacy = "differential privacy"
        if facts.epsilon is not None:
            privacy += f", epsilon = {facts.epsilon:g}" + (f", delta = {facts.delta:.2g}" if facts.delta else "")
        if facts.test_noise:
            privacy += " (TEST NOISE: NOT private)"
    else:
        privacy = f"k-synthetic data, k = {facts.k} (privacy resolution: the smallest group described)"
    lines = [
        f"- Privacy: {privacy}",
        f"- Synthesis mode: {facts.mode}",
        f"- Reporting length (most values in a combination with a published count): {facts.reporting_length}",
        f"- Published record count ({published_record_count_note(facts)}): "
        f"{format_value('count', headline.published_records)}",
        f"- Synthetic records: {format_value('count', headline.synthetic_records)}",
        f"- {EXPANSION_RATIO.name}: {EXPANSION_RATIO.format(headline.expansion_ratio)}",
    ]
    if facts.dp:
        lines.append(f"- The evaluation calls a combination rare when it is seen fewer than k = {facts.k} times; "
                     "the published counts are protected by differential privacy, not by k.")
    return lines


def _charts(charts: Mapping[str, str]) -> list[str]:
    if not charts:
        return []
    stems: dict[str, list[str]] = {}
    for name in charts:
        stem, _, ext = name.rpartition(".")
        stems.setdefault(stem, []).append(ext)
    lines = ["## Charts", ""]
    for stem, extensions in stems.items():
        caption = next(charts[f"{stem}.{e}"] for e in extensions)
        files = ", ".join(f"{stem}.{e}" for e in sorted(extensions, reverse=True))
        lines.append(f"- {caption}: {files}")
    return lines + [""]
