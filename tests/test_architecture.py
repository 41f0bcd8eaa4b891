"""Import rules between the layers, checked on the source with ``ast`` (nothing is imported):

* ``priorgnn.metrics`` scores arrays whoever made them: it imports nothing from ``priorgnn.models`` or
  ``priorgnn.runs`` (fitting, predicting and loading runs is the experiment layer, ``priorgnn.experiment``);
* ``knowledge`` builds graphs and imports no model;
* the library never imports the command-line scripts ``train.py`` and ``evaluate.py``;
* the study reads models through their public interface only: it never reaches into a model's network
  (``model.net``);
* the benchmarks import the installed package (no ``sys.path`` edits: a script's sibling modules are on
  ``sys.path`` because Python puts the script's folder there) and fit, predict and score through the
  experiment layer: no project model's ``.fit(`` called directly, no ``evaluate_seed`` or
  ``predict_conditions`` imported from the metrics.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]



def imported_modules(path: Path, package: str | None = None) -> set[str]:
    """Every module ``path`` imports, at any depth (function-level imports included), as absolute names;
    ``package`` (default: from the path) resolves relative imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    if package is None:
        package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            found.add(mod)
            found.update(f"{mod}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) in (
                "import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
            found.add(str(node.args[0].value))
    return found


def _under(mods: set[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m for m in mods if any(m == p or m.startswith(p + ".") for p in prefixes))


def _files(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def test_imported_modules_sees_every_form(tmp_path):
    """The checker itself: top-level, function-level, relative and dynamic imports are all found."""
    src = ("import priorgnn.runs\n"
           "def f():\n    from priorgnn.models.base import PriorGraphs\n"
           "from ..models import base\n"
           "import importlib\nimportlib.import_module('train')\n")
    probe = tmp_path / "probe.py"
    probe.write_text(src, encoding="utf-8")
    mods = imported_modules(probe, package="priorgnn.metrics")
    assert _under(mods, ("priorgnn.models",)) == ["priorgnn.models", "priorgnn.models.base",
                                                  "priorgnn.models.base.PriorGraphs"]
    assert _under(mods, ("priorgnn.runs",)) == ["priorgnn.runs"]
    assert "train" in mods


@pytest.mark.parametrize("path", _files("priorgnn/metrics"), ids=lambda p: p.name)
def test_metrics_import_no_model_and_no_run(path):
    rel = str(path.relative_to(ROOT))
    bad = _under(imported_modules(path), ("priorgnn.models", "priorgnn.runs", "priorgnn.pipeline"))
    assert not bad, f"{rel} imports {bad}; metrics score arrays and must not depend on models or runs"


def test_the_rule_holds_for_all_of_metrics():
    """No exception is left: every module of ``priorgnn/metrics`` imports no model, run or pipeline, and
    only the package's lazy aliases (``metrics/__init__.py``) name the experiment layer."""
    files = _files("priorgnn/metrics")
    assert {p.name for p in files} >= {"__init__.py", "core.py", "evaluation.py", "stats.py"}
    for path in files:
        mods = imported_modules(path)
        assert not _under(mods, ("priorgnn.models", "priorgnn.runs", "priorgnn.pipeline")), path.name
        if path.name != "__init__.py":
            assert not _under(mods, ("priorgnn.experiment",)), f"{path.name} imports the experiment layer"


@pytest.mark.parametrize("path", _files("knowledge"), ids=lambda p: p.name)
def test_knowledge_imports_no_model(path):
    bad = _under(imported_modules(path), ("priorgnn.models", "priorgnn.training"))
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}; knowledge builds graphs and uses no model"


@pytest.mark.parametrize("path", _files("priorgnn") + _files("knowledge"), ids=lambda p: str(p.relative_to(ROOT)))
def test_library_never_imports_the_scripts(path):
    bad = _under(imported_modules(path), ("train", "evaluate"))
    assert not bad, f"{path.relative_to(ROOT)} imports the script(s) {bad}; move what it needs into the library"


# -- the study package and its report ----------------------------------------------------------------
_STUDY_MODULES = {"priorgnn.study": ROOT / "priorgnn/study/__init__.py",
                  **{f"priorgnn.study.{p.stem}": p for p in _files("priorgnn/study") if p.stem != "__init__"},
                  "priorgnn.report.study": ROOT / "priorgnn/report/study.py"}


def test_study_definitions_import_no_report_and_no_runner():
    """``grid`` and ``analysis`` are what the report may read: they import no report and no runner."""
    for name in ("priorgnn.study.grid", "priorgnn.study.analysis"):
        bad = _under(imported_modules(_STUDY_MODULES[name]), ("priorgnn.report", "priorgnn.study.runner"))
        assert not bad, f"{name} imports {bad}"


def test_study_report_reads_only_the_grid_and_analysis():
    """The report renders: of the study it imports only ``grid`` and ``analysis`` (no runner, and not the
    package, whose names include the runner's)."""
    mods = _under(imported_modules(_STUDY_MODULES["priorgnn.report.study"]), ("priorgnn.study",))
    assert mods, "the report no longer reads the study's grid: update this test"
    assert all(m.startswith(("priorgnn.study.grid", "priorgnn.study.analysis")) for m in mods), mods


def test_no_import_cycle_between_the_study_and_its_report():
    """Imports at any depth (function-level ones included) among the study's modules and its report form
    no cycle."""
    names = sorted(_STUDY_MODULES, key=len, reverse=True)

    def target(mod: str) -> str | None:
        return next((n for n in names if mod == n or mod.startswith(n + ".")), None)

    edges = {n: {t for m in imported_modules(p) if (t := target(m)) and t != n} for n, p in _STUDY_MODULES.items()}
    assert "priorgnn.report.study" in edges["priorgnn.study.runner"]  # the runner renders through the report
    state: dict[str, int] = {}

    def visit(n: str, path: list[str]) -> None:
        state[n] = 1
        for t in edges[n]:
            assert state.get(t) != 1, f"import cycle: {' -> '.join([*path, n, t])}"
            if t not in state:
                visit(t, [*path, n])
        state[n] = 2

    for n in edges:
        if n not in state:
            visit(n, [])


def network_reads(source: str) -> list[int]:
    """Lines of ``source`` that read an attribute ``net`` (a model's torch network)."""
    return sorted(node.lineno for node in ast.walk(ast.parse(source))
                  if isinstance(node, ast.Attribute) and node.attr == "net")


def test_the_network_read_checker_sees_every_form():
    src = "a = model.net\nmodel.net.eval()\nE = m.net.pert_branch()\nnet = make()\nb = model.network\n"
    assert network_reads(src) == [1, 2, 3]


@pytest.mark.parametrize("path", _files("priorgnn/study"), ids=lambda p: p.name)
def test_the_study_never_reaches_into_a_model_network(path):
    """The study asks a model for predictions and :meth:`embeddings`; it does not read ``model.net``."""
    lines = network_reads(path.read_text(encoding="utf-8"))
    assert not lines, (f"{path.relative_to(ROOT)} reads a model's network (.net) on line(s) {lines}; use the "
                       "model's public methods (predict_output, embeddings) instead")


def test_importing_the_study_report_loads_no_runner():
    import subprocess
    import sys

    code = ("import sys, priorgnn.report.study\n"
            "print('priorgnn.study.runner' in sys.modules, 'priorgnn.models' in sys.modules)\n"
            "from priorgnn.study import run_study, MODELS\n"
            "print(run_study.__module__)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["False False", "priorgnn.study.runner"]


def sys_path_edits(source: str) -> list[int]:
    """Lines of ``source`` that change ``sys.path`` (``sys.path.insert``, ``.append``, ``.extend``)."""
    return sorted(node.lineno for node in ast.walk(ast.parse(source))
                  if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                  and node.func.attr in ("insert", "append", "extend")
                  and ast.unparse(node.func.value) == "sys.path")


def direct_fits(source: str) -> list[int]:
    """Lines of ``source`` that call ``.fit(`` on anything but the experiment layer (``experiment.fit``,
    ``priorgnn.fit``) or an estimator constructed in place from a class imported from scikit-learn
    (``TheilSenRegressor(...).fit(X, y)``)."""
    tree = ast.parse(source)
    sklearn = {alias.asname or alias.name for node in ast.walk(tree)
               if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "sklearn"
               for alias in node.names}
    lines = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "fit"):
            continue
        owner = node.func.value
        if ast.unparse(owner) in ("experiment", "priorgnn.experiment", "priorgnn"):
            continue
        if isinstance(owner, ast.Call) and isinstance(owner.func, ast.Name) and owner.func.id in sklearn:
            continue
        lines.append(node.lineno)
    return sorted(lines)


def test_the_benchmark_checkers_see_every_form():
    src = ("import sys\nsys.path.insert(0, str(ROOT))\nsys.path.append('x')\nsys.path.extend(['y'])\n"
           "paths.insert(0, 'z')\n")
    assert sys_path_edits(src) == [2, 3, 4]
    src = ("from sklearn.linear_model import TheilSenRegressor\n"
           "model.fit(data, split)\n"
           "m = get_model_class('mean')(**opts).fit(data, split)\n"
           "experiment.fit(model, data, split)\n"
           "priorgnn.fit('additive', data, split)\n"
           "TheilSenRegressor(fit_intercept=False).fit(X, y)\n"
           "Other().fit(X, y)\n")
    assert direct_fits(src) == [2, 3, 7]


_BENCHMARKS = _files("benchmarks")


@pytest.mark.parametrize("path", _BENCHMARKS, ids=lambda p: p.name)
def test_benchmarks_import_the_installed_package(path):
    """No benchmark puts the repository root (or any folder) on ``sys.path``: the project is installed
    (``make install``), and a script's sibling modules are found from the script's own folder."""
    lines = sys_path_edits(path.read_text(encoding="utf-8"))
    assert not lines, (f"{path.relative_to(ROOT)} changes sys.path on line(s) {lines}; import the installed "
                       "package (and load a repository-root script such as train.py by path if needed)")


@pytest.mark.parametrize("path", _BENCHMARKS, ids=lambda p: p.name)
def test_benchmarks_fit_and_score_through_the_experiment_layer(path):
    """Benchmarks fit with :func:`priorgnn.experiment.fit` and score with :func:`priorgnn.experiment.score`
    (predicting with :func:`~priorgnn.experiment.predict`), as ``train.py`` and ``evaluate.py`` do."""
    source = path.read_text(encoding="utf-8")
    lines = direct_fits(source)
    assert not lines, (f"{path.relative_to(ROOT)} calls .fit( directly on line(s) {lines}; fit project models "
                       "with priorgnn.experiment.fit")
    bypass = _under(imported_modules(path, package="benchmarks"),
                    ("priorgnn.metrics.evaluate_seed", "priorgnn.metrics.evaluation.evaluate_seed",
                     "priorgnn.metrics.predict_conditions"))
    assert not bypass, (f"{path.relative_to(ROOT)} imports {bypass}; score with priorgnn.experiment.score and "
                        "predict with priorgnn.experiment.predict")


def test_the_benchmark_rules_cover_the_converted_scripts():
    names = {p.name for p in _BENCHMARKS}
    assert {"real_norman_subset.py", "pair_ranking.py", "knowledge_encodings.py", "calibrate_knowledge.py",
            "transformer_memory.py", "robustness.py", "vs_gears.py", "demo_models.py"} <= names
