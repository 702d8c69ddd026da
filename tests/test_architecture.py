"""The package's structure rules, checked on the source (no Spark): who may import pyspark, the
one-way import ladder, module sizes, and no print in the package."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "ksynth_spark"

#: Modules that may import pyspark: every package's stage.py and the documented entry points.
SPARK_MODULES = {"session", "io", "pipeline", "load", "inputs", "aggregate", "evaluate", "verify", "committed"}

#: The import ladder, top to bottom: a module may import only from its own rung or below.
LADDER = [
    {"cli", "notebook", "api"},
    {"pipeline"},
    {"report.stage", "committed"},
    {"evaluate", "verify"},
    {"synthesis.stage", "dp.stage", "aggregate", "load", "inputs", "run_state"},
    {"synthesis", "dp", "report", "combinations", "session", "release_checks"},
    {"model", "config", "io", "errors", "outputs", "numerics", "randomness", "arrow_jobs", "jit",
     "progress"},
]


def modules() -> dict[str, ast.Module]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        found[name.removesuffix(".__init__") if name != "__init__" else "__init__"] = ast.parse(path.read_text())
    return found


def _runtime_nodes(tree: ast.AST):
    """Every node except those under ``if TYPE_CHECKING:`` (imports for annotations only)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            continue
        yield node
        yield from _runtime_nodes(node)


def imported(tree: ast.Module) -> set[str]:
    names = set()
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def rung(module: str) -> int:
    for level, members in enumerate(LADDER):
        if module in members:
            return level
    prefix = module.split(".")[0]
    for level, members in enumerate(LADDER):
        if prefix in members:
            return level
    raise AssertionError(f"module {module} is not on the import ladder of tests/test_architecture.py")


def test_only_stage_modules_and_entry_points_import_pyspark():
    offenders = [name for name, tree in modules().items()
                 if any(n == "pyspark" or n.startswith("pyspark.") for n in imported(tree))
                 and name.split(".")[-1] != "stage" and name not in SPARK_MODULES]
    assert offenders == []


def test_imports_go_down_the_ladder():
    upward = []
    for name, tree in modules().items():
        if name == "__init__":
            continue
        for target in imported(tree):
            if target.startswith("ksynth_spark."):
                target = target.removeprefix("ksynth_spark.")
                if rung(target) < rung(name):
                    upward.append(f"{name} -> {target}")
    assert upward == []


def test_modules_are_small_and_documented_and_do_not_print():
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        assert len(text.splitlines()) <= 700, path
        tree = ast.parse(text)
        assert ast.get_docstring(tree), f"{path} has no module docstring"
        prints = [node.lineno for node in ast.walk(tree)
                  if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print"]
        assert prints == [], f"print() in {path}: {prints}"
