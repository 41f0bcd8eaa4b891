"""Safe loading, checked on the source: no unpickling of user files except through the restricted
gene2go reader, ``torch.load`` only with ``weights_only=True``, ``np.load`` only without pickles."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = sorted([*REPO.glob("priorgnn/**/*.py"), *REPO.glob("knowledge/**/*.py"),
                  REPO / "train.py", REPO / "evaluate.py"])
#: the one place allowed to unpickle: a subclass of pickle.Unpickler that refuses every global
ALLOWED_UNPICKLER = ("knowledge/go.py", "_DataOnlyUnpickler")


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _kw_is(call: ast.Call, name: str, value) -> bool:
    return any(k.arg == name and isinstance(k.value, ast.Constant) and k.value.value is value
               for k in call.keywords)


def unsafe_loads(source: str, rel: str) -> list[str]:
    """Calls in ``source`` that could run code from a file's contents."""
    problems = []
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            bases = {_dotted(b) for b in node.bases}
            if "pickle.Unpickler" in bases and (rel, node.name) != ALLOWED_UNPICKLER:
                problems.append(f"{rel}:{node.lineno} unpickler class {node.name}")
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        where = f"{rel}:{node.lineno} {name}"
        if name in {"pickle.load", "pickle.loads", "pickle.Unpickler", "pd.read_pickle", "pandas.read_pickle",
                    "joblib.load", "dill.load", "cloudpickle.load", "marshal.load", "marshal.loads"}:
            problems.append(where)
        elif name == "torch.load" and not _kw_is(node, "weights_only", True):
            problems.append(where + " without weights_only=True")
        elif name in {"np.load", "numpy.load"} and not _kw_is(node, "allow_pickle", False):
            problems.append(where + " without allow_pickle=False")
        elif name in {"yaml.load", "yaml.unsafe_load", "yaml.full_load"}:
            problems.append(where + " (use yaml.safe_load)")
        elif name in {"eval", "exec"}:
            problems.append(where)
    return problems


def test_no_unsafe_loading_in_the_project():
    assert SOURCES and all(p.exists() for p in SOURCES)
    found = [p for path in SOURCES for p in unsafe_loads(path.read_text(), path.relative_to(REPO).as_posix())]
    assert found == []


@pytest.mark.parametrize("snippet", [
    "import pickle\npickle.load(open('x', 'rb'))",
    "import torch\ntorch.load('x.pt')",
    "import torch\ntorch.load('x.pt', weights_only=False)",
    "import numpy as np\nnp.load('x.npz', allow_pickle=True)",
    "import numpy as np\nnp.load('x.npy')",
    "import pandas as pd\npd.read_pickle('x')",
    "import yaml\nyaml.load(open('c.yaml'))",
    "import pickle\nclass U(pickle.Unpickler):\n    pass",
])
def test_the_checker_flags_unsafe_calls(snippet):
    """Control: each unsafe pattern is caught, so the project-wide check can fail."""
    assert unsafe_loads(snippet, "x.py")


def test_the_checker_accepts_the_safe_forms():
    ok = ("import torch, numpy as np, yaml\ntorch.load('x', map_location='cpu', weights_only=True)\n"
          "np.load('x.npz', allow_pickle=False)\nyaml.safe_load('a: 1')\nnet.eval()\n")
    assert unsafe_loads(ok, "x.py") == []


def test_the_data_only_unpickler_is_used_through_its_reader_only():
    """Other modules read pickles through ``knowledge.go.read_data_pickle``, not the private class."""
    users = [path.relative_to(REPO).as_posix() for path in SOURCES
             if ALLOWED_UNPICKLER[1] in path.read_text() and path.relative_to(REPO).as_posix() != ALLOWED_UNPICKLER[0]]
    assert users == []
