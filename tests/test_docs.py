"""The docs and the CLI help tell the truth: every configuration key is documented with its real
default, every metric is defined, no spec section numbers or paths of one machine, and the
help is complete (no Spark needed)."""

import dataclasses
import json
import re
import typing

import pytest

from ksynth_spark.config import Config, SparkSettings
from tests.conftest import REPO

DOCS = REPO / "docs"
#: Keys of the 2021 pipeline that are accepted but are not fields of Config.
LEGACY_KEYS = {"seeded", "memory_limit_pct"}
_ROW = re.compile(r"^\| `([\w.]+)` \| ([^|]+) \| (.+) \|$")


def _documented_keys() -> dict[str, tuple[str, str]]:
    """``key -> (default cell, description)`` of every key row in docs/configuration.md."""
    rows = {}
    for line in (DOCS / "configuration.md").read_text(encoding="utf-8").splitlines():
        found = _ROW.match(line.strip())
        if found:
            key, default, text = found.groups()
            assert key not in rows, f"{key} is documented twice"
            rows[key] = (default.strip(), text)
    return rows


def _fields() -> dict[str, tuple[dataclasses.Field, typing.Any]]:
    """Every accepted key (``spark.<name>`` for the spark section) with its field and type."""
    out = {}
    for cls, prefix in ((Config, ""), (SparkSettings, "spark.")):
        hints = typing.get_type_hints(cls)
        for item in dataclasses.fields(cls):
            if cls is Config and item.name == "spark":
                continue
            out[prefix + item.name] = (item, hints[item.name])
    return out


def _default_text(key: str, item: dataclasses.Field) -> str:
    if key == "sensitive_microdata_path":
        return "required"
    value = item.default_factory() if item.default is dataclasses.MISSING else item.default
    return f"`{json.dumps(value)}`"


def test_every_configuration_key_is_documented_with_its_default():
    documented = _documented_keys()
    fields = _fields()
    missing = sorted(set(fields) - set(documented))
    assert not missing, f"keys missing from docs/configuration.md: {missing}"
    unknown = sorted(set(documented) - set(fields))
    assert not unknown, f"docs/configuration.md documents keys that do not exist: {unknown}"
    for key, (item, _) in fields.items():
        assert documented[key][0] == _default_text(key, item), (key, documented[key][0])


def test_every_choice_of_a_key_with_fixed_values_is_documented():
    documented = _documented_keys()
    for key, (_, hint) in _fields().items():
        if typing.get_origin(hint) is typing.Literal:
            for value in typing.get_args(hint):
                assert f"`{value}`" in documented[key][1], (key, value)


def test_the_legacy_keys_are_documented_and_accepted():
    from ksynth_spark.config import config_from_dict

    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    for key in LEGACY_KEYS:
        assert f"`{key}`" in text
    assert config_from_dict({"sensitive_microdata_path": "x", "seeded": False, "memory_limit_pct": 80},
                            ).synthesis_mode == "unseeded"


def test_every_metric_is_defined_in_the_algorithms_page():
    metrics = pytest.importorskip("ksynth_spark.report.metrics")
    text = (DOCS / "algorithms.md").read_text(encoding="utf-8")
    for metric in metrics.ALL_METRICS:
        assert f"**{metric.name}**" in text, metric.name
    from ksynth_spark.config import SYNTHESIS_MODES

    for mode in SYNTHESIS_MODES:
        assert f"### `{mode}`" in text, mode


def test_docs_cite_no_spec_sections_and_no_path_of_one_machine():
    for page in sorted(DOCS.glob("*.md")):
        text = page.read_text(encoding="utf-8")
        assert "§" not in text and "ALGORITHM.md" not in text and "spec" not in text.lower().split(), page.name
        for prefix in ("/work/", "/root/", "/home/", "/Users/", "C:\\"):
            assert prefix not in text, (page.name, prefix)
        for link in re.findall(r"\]\(([\w-]+\.md)(?:#[\w-]+)?\)", text):
            assert (DOCS / link).exists(), (page.name, link)


def test_version_option_prints_the_package_version(capsys):
    from ksynth_spark import __version__
    from ksynth_spark.cli import main

    try:
        status = main(["--version"])
    except SystemExit as stopped:  # argparse's own exit, if main lets it through
        status = stopped.code
    assert status in (0, None)
    assert capsys.readouterr().out.strip() == f"ksynth-spark {__version__}"


def test_help_is_complete_in_pipeline_order_and_names_only_real_options():
    from ksynth_spark.cli import build_parser

    parser = build_parser()
    top = parser.format_help()
    assert "§" not in top and "spec" not in top.lower()
    order = [top.index(f"    {name}") for name in ("aggregate", "generate", "evaluate", "showcase", "run", "verify")]
    assert order == sorted(order), top
    assert "release/<prefix>_showcase.html)" in " ".join(top.split())  # not cut at the first '.'
    for page in ("configuration", "algorithms", "running"):
        assert f"docs/{page}.md" in top and (DOCS / f"{page}.md").exists()
    commands = next(a for a in parser._actions if a.dest == "command")
    for name, sub in commands.choices.items():
        text = sub.format_help()
        assert "§" not in text and "spec " not in text.lower(), name
        options = {option for action in sub._actions for option in action.option_strings}
        for claimed in set(re.findall(r"(?<![\w-])--[a-z][\w-]*", text)):
            assert claimed in options, (name, claimed)
    verify = commands.choices["verify"].format_help()
    assert "--set" not in verify and "--output-dir" not in verify
