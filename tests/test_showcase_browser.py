"""Browser tests of the showcase page (Playwright driving Debian's Chromium).

The page is opened from a ``file://`` URL with every request observed; the
numbers it shows are compared with counts computed independently here with
pandas from the release files, and its words with the privacy statement of the
release's configuration and recorded facts. Pages come from small real runs of
the pipeline on the bundled German credit data (one per mode) and from
hand-made inputs.

Needs ``/usr/bin/chromium`` (Debian package ``chromium``) and the PyPI package
``playwright`` (no Playwright-downloaded browser). The tests are skipped when
either is missing; CI installs both.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest

from ksynth_spark.report.privacy import ReleaseFacts, privacy_statement
from ksynth_spark.report.showcase import extract_showcase_data, render_showcase_html

logger = logging.getLogger(__name__)

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
REPO_ROOT = Path(__file__).resolve().parents[1]
GERMAN_CREDIT_CSV = REPO_ROOT / "data" / "german_credit.csv"
SCREENSHOT = REPO_ROOT / "test-artifacts" / "showcase_german_credit.png"
K = 10
R = 3
CLICK_BUDGET_MS = 200.0
#: The facts of the hand-made pages: k-anonymous row_seeded, k = 10, R = 3.
K_FACTS = ReleaseFacts(mode="row_seeded", k=K, reporting_length=R, dp=False)

# Attribute values clicked in the German credit page (two different columns).
FIRST_SELECTION = ("housing", "own")
SECOND_SELECTION = ("purpose", "radio/television")
REFUSED_SELECTION = ("telephone", "yes")


# --------------------------------------------------------------------------- #
# Release files
# --------------------------------------------------------------------------- #

def german_config(out: Path, **options):
    from ksynth_spark.config import config_from_dict

    return config_from_dict({
        "sensitive_microdata_path": str(GERMAN_CREDIT_CSV), "reporting_resolution": K, "reporting_length": R,
        "synthesis_mode": "row_seeded", "seed": 7, "output_dir": str(out), "prefix": "german",
        "table_format": "parquet", "report_title": "German credit \u2013 k-synthetic data showcase", **options,
    })


@pytest.fixture(scope="session")
def german_run(spark, tmp_path_factory):
    """``(output_dir, config, run)`` of the real pipeline's release of the bundled German credit
    data (k = 10, R = 3, row_seeded, every stage)."""
    from ksynth_spark.pipeline import run_stages

    out = tmp_path_factory.mktemp("german_release")
    config = german_config(out)
    run = run_stages(spark, config, ("aggregate", "generate", "evaluate", "showcase"))
    return out, config, run


@pytest.fixture(scope="session")
def german_release(german_run) -> Path:
    """The output directory of the German credit release."""
    return german_run[0]


@pytest.fixture(scope="module")
def mode_releases(spark, german_run, tmp_path_factory) -> dict[str, tuple[Path, object]]:
    """``name -> (showcase page, config)`` of small real releases in every mode: row_seeded (the
    session release), aggregate_seeded on k-anonymous aggregates (no evaluation: the page counts
    the synthetic combinations itself), DP (evaluation restricted), and the showcase stage run
    alone on a copy of the row_seeded release (reads the committed tables)."""
    from ksynth_spark.pipeline import run_stages

    out, config, _ = german_run
    releases = {"row_seeded": (out / "release" / "german_showcase.html", config)}
    for name, options, stages in [
        ("aggregate_seeded", {"synthesis_mode": "aggregate_seeded"}, ("aggregate", "generate", "showcase")),
        ("dp", {"synthesis_mode": "aggregate_seeded", "dp_aggregates": True},
         ("aggregate", "generate", "evaluate", "showcase")),
    ]:
        target = tmp_path_factory.mktemp(f"german_{name}")
        mode_config = german_config(target, **options)
        run_stages(spark, mode_config, stages)
        releases[name] = (target / "release" / "german_showcase.html", mode_config)
    alone = tmp_path_factory.mktemp("german_showcase_alone") / "release_copy"
    shutil.copytree(out, alone)
    alone_config = german_config(alone)
    run_stages(spark, alone_config, ("showcase",))
    releases["showcase_alone"] = (alone / "release" / "german_showcase.html", alone_config)
    return releases


@pytest.fixture(scope="session")
def german_release_files(german_release) -> tuple[Path, Path]:
    """``(synthetic_tsv_path, reportable_tsv_path)`` of the pipeline's German credit release."""
    return (german_release / "release" / "german_synthetic_microdata.tsv",
            german_release / "release" / "german_reportable_aggregates.tsv")


def read_synthetic(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, na_filter=False)


def read_reportable(path: Path) -> tuple[pd.DataFrame, dict[frozenset, int]]:
    """Return the raw table and ``{attribute set: protected count}``."""
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, na_filter=False)
    combos = {}
    for selections, count in zip(table["selections"], table["protected_count"], strict=True):
        if selections != "record_count":
            combos[frozenset(tuple(a.split(":")) for a in selections.split(";"))] = int(count)
    return table, combos


def recorded_facts(page: Path, config) -> ReleaseFacts:
    """The facts of a release from its configuration and what its stages recorded."""
    effective = json.loads((page.parent.parent / "german_config.json").read_text(encoding="utf-8"))
    return ReleaseFacts.from_run(config, effective["derived"])


def load_generator_module():
    """Load tests/test_showcase.py by path (works with any pytest import mode)."""
    spec = importlib.util.spec_from_file_location(
        "_showcase_unit_tests", Path(__file__).with_name("test_showcase.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- #
# Browser
# --------------------------------------------------------------------------- #

@pytest.fixture(scope="session")
def chromium_browser():
    """A headless Debian Chromium driven by Playwright (skips if unavailable)."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found: install Debian's 'chromium' package (apt-get install chromium)")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="the 'playwright' Python package is not installed (pip install playwright)"
    )
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield browser
        browser.close()


class OpenedPage:
    """A showcase page opened in a fresh context with all requests recorded."""

    def __init__(self, browser, html_path: Path):
        self.url = html_path.resolve().as_uri()
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.context = browser.new_context(viewport={"width": 1400, "height": 900})
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.set_default_timeout(20_000)
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        # A load blocked by the page's Content-Security-Policy never becomes a
        # request, but Chromium reports it as a console error.
        self.page.on(
            "console",
            lambda message: self.errors.append(message.text) if message.type == "error" else None,
        )
        started = time.perf_counter()
        self.page.goto(self.url)
        self.page.wait_for_selector("body[data-ready='true']")
        self.load_seconds = time.perf_counter() - started

    def _route(self, route):
        url = route.request.url
        self.requests.append(url)
        if url.startswith("file://"):
            route.continue_()
        else:
            route.abort()

    def close(self):
        self.context.close()

    def assert_offline(self):
        assert self.errors == []
        assert self.requests, "no request observed at all"
        assert set(self.requests) == {self.url}, f"unexpected requests: {set(self.requests) - {self.url}}"

    def bar(self, column: str, value: str):
        return self.page.locator(
            f'.bar-row[data-column="{css_string(column)}"][data-value="{css_string(value)}"]'
        )

    def bars(self) -> list[dict]:
        return self.page.evaluate(
            """() => [...document.querySelectorAll('.chart')].flatMap((chart, chartIndex) =>
                 [...chart.querySelectorAll('.bar-row')].map((row) => ({
                   chart: chartIndex,
                   column: row.dataset.column,
                   value: row.dataset.value,
                   estimate: row.dataset.estimate,
                   actual: row.dataset.actual,
                   estimateText: row.querySelector('.num-estimate').textContent,
                   actualText: row.querySelector('.num-actual').textContent,
                   selected: row.classList.contains('selected'),
                 })))"""
        )

    def statement(self) -> tuple[str, str]:
        """The privacy statement's headline and details as shown."""
        return self.page.inner_text("#privacy-headline"), self.page.inner_text("#privacy-details")

    def screen(self) -> dict:
        """Every number and label on the explore view (bars, summary, selection)."""
        return {"bars": self.bars(), "summary": self.page.inner_text("#selection-summary"),
                "selection": self.selection(), "message": self.page.inner_text("#selection-message")}

    def selection(self) -> list[tuple[str, str]]:
        return [
            tuple(item)
            for item in self.page.evaluate(
                "() => [...document.querySelectorAll('#selection-list .chip')]"
                ".map((c) => [c.dataset.column, c.dataset.value])"
            )
        ]

    def timed_click(self, column: str, value: str) -> float:
        """Click a bar inside the page; milliseconds until the DOM is updated and laid out."""
        return self.page.evaluate(
            """([column, value]) => {
                 const row = [...document.querySelectorAll('.bar-row')]
                   .find((r) => r.dataset.column === column && r.dataset.value === value);
                 if (!row) throw new Error(`no bar ${column}=${value}`);
                 const t0 = performance.now();
                 row.click();
                 void document.body.offsetHeight;  // include style and layout
                 return performance.now() - t0;
               }""",
            [column, value],
        )


def css_string(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def number_text(value: int | None) -> str:
    return "\u2013" if value is None else f"{value:,}"


def expected_bar(synthetic, reportable, selection, column, value):
    """Independent est/act of bar (column, value) under the selection (spec section 5.7)."""
    if (column, value) in selection:
        base = set(selection)
    else:
        base = {s for s in selection if s[0] != column}
    combo = base | {(column, value)}
    mask = pd.Series(True, index=synthetic.index)
    for c, v in combo:
        mask &= synthetic[c] == v
    return int(mask.sum()), reportable.get(frozenset(combo))


def check_all_bars(opened: OpenedPage, synthetic, reportable, selection) -> dict[str, int]:
    """Compare every displayed bar with independent counts; returns tallies."""
    shown = opened.bars()
    tallies = {"checked": 0, "reported": 0, "not_reported": 0, "other_columns": 0}
    by_chart: dict[int, list[int]] = {}
    seen = set()
    selected_columns = {c for c, _ in selection}
    for bar in shown:
        est, act = expected_bar(synthetic, reportable, selection, bar["column"], bar["value"])
        where = f"bar {bar['column']}={bar['value']!r}"
        assert int(bar["estimate"]) == est, where
        assert bar["estimateText"] == number_text(est), where
        assert bar["actual"] == ("" if act is None else str(act)), where
        assert bar["actualText"] == number_text(act), where
        assert bar["selected"] == ((bar["column"], bar["value"]) in selection), where
        by_chart.setdefault(bar["chart"], []).append(est)
        seen.add((bar["column"], bar["value"]))
        tallies["checked"] += 1
        tallies["reported" if act is not None else "not_reported"] += 1
        tallies["other_columns"] += bar["column"] not in selected_columns
    for estimates in by_chart.values():
        assert estimates == sorted(estimates, reverse=True)
    # Every value with est > 0 has a bar, and only those.
    for column in synthetic.columns:
        for value in synthetic[column].unique():
            if value == "":
                continue
            est, _ = expected_bar(synthetic, reportable, selection, column, value)
            assert ((column, value) in seen) == (est > 0), f"{column}={value!r}"
    return tallies


# --------------------------------------------------------------------------- #
# Tests
# --------------------------------------------------------------------------- #

@pytest.fixture(scope="session")
def german_page(german_release) -> Path:
    """The showcase page the pipeline wrote for German credit."""
    return german_release / "release" / "german_showcase.html"


def test_german_page_embeds_no_sensitive_only_value(german_release):
    """Every combination and value in the page describes at least k sensitive records."""
    sensitive = pd.read_csv(german_release / "sensitive" / "german_sensitive_aggregates.tsv", sep="\t",
                            dtype=str, keep_default_na=False)
    counts = {frozenset(s.split(";")): int(c) for s, c in zip(sensitive["selections"], sensitive["count"],
                                                               strict=True)}
    html = (german_release / "release" / "german_showcase.html").read_text(encoding="utf-8")
    data = extract_showcase_data(html)
    labels = [f"{column['name']}:{value}" for column in data["columns"] for value in column["values"]]
    assert all(counts[frozenset([label])] >= K for label in labels)
    assert data["combinations"], "no combination embedded"
    for block in data["combinations"]:
        for ids in block["combos"]:
            assert counts[frozenset(labels[i] for i in ids)] >= K
    assert len(html.encode("utf-8")) < 5_000_000


def test_german_credit_selection_matches_release_files(chromium_browser, german_page, german_release_files):
    synthetic_path, reportable_path = german_release_files
    synthetic = read_synthetic(synthetic_path)
    _, reportable = read_reportable(reportable_path)
    opened = OpenedPage(chromium_browser, german_page)
    try:
        page = opened.page
        assert page.locator(".chart").count() == synthetic.shape[1]

        # No selection: single-value counts.
        tallies = check_all_bars(opened, synthetic, reportable, [])
        assert tallies["checked"] > 50

        # Two values in two different columns.
        opened.bar(*FIRST_SELECTION).click()
        opened.bar(*SECOND_SELECTION).click()
        selection = [FIRST_SELECTION, SECOND_SELECTION]
        assert opened.selection() == selection
        tallies = check_all_bars(opened, synthetic, reportable, selection)
        assert tallies["other_columns"] >= 40
        # Row-seeded records have sensitive support >= k (S1), so with at most R attributes every
        # shown estimate is also reported; the "not reported" branch is checked in the visuals test.
        assert tallies["reported"] > 0, tallies
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)

        # A third selection is refused with an explanation.
        assert page.locator("#selection-message").is_hidden()
        opened.bar(*REFUSED_SELECTION).click()
        message = page.locator("#selection-message")
        assert message.is_visible()
        assert f"R = {R}" in message.inner_text() and "At most 2" in message.inner_text()
        assert opened.selection() == selection
        assert opened.bar(*REFUSED_SELECTION).get_attribute("aria-pressed") == "false"

        # Clicking a selected bar deselects it (and hides the message).
        opened.bar(*FIRST_SELECTION).click()
        assert opened.selection() == [SECOND_SELECTION]
        assert message.is_hidden()
        check_all_bars(opened, synthetic, reportable, [SECOND_SELECTION])

        # A second value of the same column is allowed and intersects: no
        # synthetic record has two housing values, so every other chart empties
        # (the housing chart keeps its unselected value, whose Sel' drops the
        # housing selections) and the values can be removed from the list.
        page.click("#clear-selection")
        opened.bar("housing", "own").click()
        opened.bar("housing", "rent").click()
        same_column = [("housing", "own"), ("housing", "rent")]
        assert opened.selection() == same_column
        check_all_bars(opened, synthetic, reportable, same_column)
        assert [(b["column"], b["value"]) for b in opened.bars()] == [("housing", "for free")]
        assert page.locator(".chart .empty").count() == synthetic.shape[1] - 1
        assert page.locator(".summary-estimate").inner_text() == "0"
        page.locator("#selection-list .chip-remove").first.click()
        assert opened.selection() == [("housing", "rent")]
        check_all_bars(opened, synthetic, reportable, [("housing", "rent")])

        # Clear resets everything.
        opened.bar(*FIRST_SELECTION).click()
        assert len(opened.selection()) == 2
        page.click("#clear-selection")
        assert opened.selection() == []
        check_all_bars(opened, synthetic, reportable, [])

        # The header figures say what they count and match the release files.
        facts = {name: value for name, value in page.evaluate(
            "() => [...document.querySelectorAll('.fact')].map((f) => "
            "[f.dataset.fact, f.querySelector('.fact-value').textContent])")}
        assert facts["Synthetic records"] == f"{len(synthetic):,}"
        record_count = pd.read_csv(reportable_path, sep="\t", dtype=str, nrows=1)["protected_count"][0]
        assert facts["Sensitive records"] == f"{int(record_count):,}"

        # The evaluation view shows the public metrics.
        page.click("#tab-evaluation")
        assert page.locator("#evaluation .metrics tr").count() > 3
        assert page.locator("#view-explore").is_hidden()
        opened.assert_offline()
    finally:
        opened.close()


def page_text(opened: OpenedPage) -> str:
    """All visible text of the page, the evaluation view included."""
    opened.page.click("#tab-evaluation")
    evaluation = opened.page.inner_text("#view-evaluation")
    opened.page.click("#tab-explore")
    return opened.page.inner_text("body") + "\n" + evaluation


@pytest.mark.parametrize("mode", ["row_seeded", "aggregate_seeded", "dp"])
def test_privacy_statement_is_true_of_the_release(chromium_browser, mode_releases, mode):
    """The page states what the release's configuration and recorded facts support, and nothing more."""
    page_path, config = mode_releases[mode]
    facts = recorded_facts(page_path, config)
    statement = privacy_statement(facts)
    opened = OpenedPage(chromium_browser, page_path)
    try:
        headline, details = opened.statement()
        assert headline == statement.headline
        assert details == " ".join(statement.details)
        text = page_text(opened)
        legend = opened.page.inner_text(".legend")
        how_to_read = opened.page.inner_text("#how-to-read")
        assert "Which number should I quote?" in how_to_read
        if mode == "dp":
            assert config.dp_aggregates and facts.epsilon is not None
            assert headline.startswith("This release is differentially private with epsilon = ")
            assert f"{facts.epsilon:g}" in headline
            for claim in ["multiple of", "rounded down", f"at least {K}", "k = ", "k-anonym", "Protected"]:
                assert claim not in text, claim
            assert "Published count (differentially private, noisy)" in legend
            heads = opened.page.locator(".chart").first.locator(".bar-head .bar-numbers span").all_text_contents()
            assert heads == ["Estimate", "Published"]  # (shown upper-case by the style sheet)
            assert "kept restricted" in opened.page.inner_text("#evaluation")
            assert "No evaluation was run" not in text
        else:
            assert not config.dp_aggregates and not statement.warning
            assert f"at least {config.k} records" in headline
            assert f"rounded down to a multiple of {config.k}" in details
            assert f"Protected count (rounded down to a multiple of {config.k})" in legend
            assert "differentially private" not in text
        if mode == "aggregate_seeded":
            # Guarantees reach combinations of up to R values only: no record-level claim.
            assert headline.startswith(f"Every combination of up to {R} values")
            assert "Every synthetic record" not in text and "every synthetic record" not in text
            assert "not a guarantee about whole synthetic records" in details
            assert "No evaluation was run for this release." in opened.page.inner_text("#evaluation")
        if mode == "row_seeded":
            assert headline.startswith("Every synthetic record")
            assert "An independent check" in details
        opened.assert_offline()
    finally:
        opened.close()


def stage_page(config, run, embedding: str, tmp_path: Path) -> Path:
    """The page of a run rendered by the showcase stage's gatherer with a forced embedding."""
    from ksynth_spark.pipeline import released_headers
    from ksynth_spark.report.stage import ShowcaseInputs, showcase_html

    inputs = ShowcaseInputs(run.synthesis.records, run.reportable.table, run.reportable.record_count,
                            run.reportable.count_column, run.aggregates.reporting_length, released_headers(run),
                            None, dict(run.derived), run.evaluation.synthetic_aggregates, embedding)
    path = tmp_path / f"german_{embedding}.html"
    path.write_text(showcase_html(config, run.data, inputs), encoding="utf-8")
    return path


def test_both_embeddings_show_the_same_numbers(chromium_browser, german_run, german_release_files, mode_releases,
                                               tmp_path):
    """The distinct-records page and the combination-counts page of one release show the same
    numbers for the same clicks, equal to counts from the release files; the showcase stage run
    alone (committed tables) embeds the same data as the full run."""
    _, config, run = german_run
    synthetic = read_synthetic(german_release_files[0])
    _, reportable = read_reportable(german_release_files[1])
    pages = {name: stage_page(config, run, name, tmp_path) for name in ("records", "combinations")}
    for name, path in pages.items():
        data = extract_showcase_data(path.read_text(encoding="utf-8"))
        assert data["embedding"] == name
        assert (data["records"] is not None) == (name == "records")

    clicks = [FIRST_SELECTION, SECOND_SELECTION, REFUSED_SELECTION, FIRST_SELECTION, ("housing", "rent"),
              ("housing", "own")]
    screens = {}
    for name, path in pages.items():
        opened = OpenedPage(chromium_browser, path)
        try:
            assert opened.page.evaluate("document.body.dataset.embedding") == name
            shown = [opened.screen()]
            for click in clicks:
                opened.bar(*click).click()
                shown.append(opened.screen())
            check_all_bars(opened, synthetic, reportable, opened.selection())
            opened.assert_offline()
        finally:
            opened.close()
        screens[name] = shown
    assert screens["records"] == screens["combinations"]
    assert len(screens["records"][-1]["selection"]) == 2

    full, alone = (extract_showcase_data(mode_releases[name][0].read_text(encoding="utf-8"))
                   for name in ("row_seeded", "showcase_alone"))
    assert alone == full


def test_click_latency_on_adult_sized_table(chromium_browser, tmp_path):
    generator = load_generator_module()
    synthetic, reportable = generator.generate_adult_sized_release()
    first = ("education", "education_0")
    second = ("occupation", "occupation_1")
    third = ("race", "race_0")
    for embedding in ("records", "combinations"):
        html_path = tmp_path / f"adult_sized_{embedding}.html"
        html_path.write_text(render_showcase_html(synthetic, reportable, title="Adult-sized", facts=K_FACTS,
                                                  embedding=embedding), encoding="utf-8")
        opened = OpenedPage(chromium_browser, html_path)
        try:
            logger.info("Adult-sized page (%s) loaded in %.2f s", embedding, opened.load_seconds)
            timings = {
                "select first": opened.timed_click(*first),
                "select second": opened.timed_click(*second),
                "refused third": opened.timed_click(*third),
                "deselect first": opened.timed_click(*first),
                "select third": opened.timed_click(*third),
            }
            logger.info("click timings (%s, ms): %s", embedding, timings)
            assert opened.selection() == [second, third]
            assert max(timings.values()) < CLICK_BUDGET_MS, (embedding, timings)
            opened.assert_offline()
        finally:
            opened.close()


def test_pages_visuals_and_evaluation_view(chromium_browser, tmp_path):
    synthetic = pd.DataFrame(
        {
            "region": ["north"] * 30 + ["south"] * 20,
            "lang_english": ["1"] * 40 + [""] * 10,
            "lang_french": [""] * 25 + ["1"] * 25,
            "lang_german": ["1"] * 12 + [""] * 38,
        }
    )
    reportable = pd.DataFrame(
        {
            "selections": ["record_count", "region:north", "region:south", "lang_english:1",
                           "lang_french:1", "lang_german:1", "lang_french:1;region:south",
                           "lang_english:1;region:south"],
            "protected_count": [50, 30, 20, 40, 20, 10, 20, 10],
        }
    )
    for embedding in ("records", "combinations"):
        html = render_showcase_html(
            synthetic, reportable, title="Visuals", embedding=embedding,
            facts=ReleaseFacts(mode="row_seeded", k=K, reporting_length=2, dp=False),
            report_pages={"Languages": ["lang_english", "lang_french", "lang_german"]},
            report_visuals={"Spoken languages": ["lang_english", "lang_french", "lang_german"]},
            evaluation={"metrics": {"Mean absolute error": "1.25"},
                        "charts": {"Tiny": '<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" '
                                           'width="10" height="10"><rect id="r" width="5" height="5"/></svg>'}},
        )
        html_path = tmp_path / f"visuals_{embedding}.html"
        html_path.write_text(html, encoding="utf-8")
        opened = OpenedPage(chromium_browser, html_path)
        try:
            page = opened.page
            tabs = page.locator(".page-tab")
            assert tabs.all_inner_texts() == ["Languages", "Other attributes"]
            # One chart whose bars are the pieces, sorted by estimate.
            assert page.locator(".chart").count() == 1
            labels = page.locator(".chart .bar-row .bar-label").all_inner_texts()
            assert labels == ["english", "french", "german"]
            bars = opened.bars()
            assert [(b["column"], b["estimate"], b["actual"]) for b in bars] == [
                ("lang_english", "40", "40"), ("lang_french", "25", "20"), ("lang_german", "12", "10")]

            # R = 2: one selection allowed; the region page then shows the combinations.
            opened.bar("lang_french", "1").click()
            opened.bar("lang_english", "1").click()
            assert "At most 1 value" in page.inner_text("#selection-message")
            tabs.nth(1).click()
            bars = {b["value"]: (b["estimate"], b["actual"]) for b in opened.bars()}
            assert bars == {"south": ("20", "20"), "north": ("5", "")}
            assert "25 synthetic records" in page.inner_text("#selection-summary")

            page.click("#tab-evaluation")
            assert "Mean absolute error" in page.inner_text("#evaluation .metrics")
            assert page.locator("#evaluation svg rect").count() == 1
            opened.assert_offline()
        finally:
            opened.close()
