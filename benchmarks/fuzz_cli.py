"""Fuzz cases for the command lines: seeded random flag combinations and values for ``train.py``,
``train.py predict``, ``evaluate.py``, ``python -m priorgnn.simulate``, ``python -m knowledge``, and the
download commands ``python -m priorgnn.data`` and ``python -m knowledge download-go`` (never reaching the
network: their URLs are never http(s), and files are imported with ``--from-file``).

Every case must exit 0, or exit 2 with exactly one line on stderr; never a traceback, and never a
change to an input file or to an existing run (every file is hashed before and after; a successful
``--resume``/``--overwrite`` may update the run it names, a successful prediction may add files and
``--overwrite`` them, ``evaluate.py`` may write a new report, or replace one with ``--overwrite``, and a
successful download may update its own ``--dest`` folder).
The tools run in-process through their ``main(argv)``. Values are drawn mostly from invalid ones
(cheap: refused at parse or validation time); valid combinations train on tiny data for one epoch.

Used by ``tests/test_fuzz_cli.py`` (:data:`N_FAST` cases; ``pytest -m slow`` runs :data:`N_SLOW`) and by
``benchmarks/robustness.py`` (the counts). ``train.py`` is imported as a module (pytest puts the repository
root on ``sys.path``; ``benchmarks/robustness.py`` loads it by path).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import random
from pathlib import Path

from priorgnn.testing import synth_lognorm

N_FAST = 300
N_SLOW = 2000

BAD_NUMBERS = ["0", "-1", "-0.5", "abc", "nan", "inf", "1e400", "", " ", "2.5", "1,5", "0x10"]


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and ".lock" not in p.name}


def make_world(root: Path) -> Path:
    """Inputs the cases point at, in ``root``: a tiny data set, an additive run, a text file, a bad
    and a good YAML config, a conditions file."""
    import train

    data = root / "d.h5ad"
    synth_lognorm().write_h5ad(data)
    (root / "empty.h5ad").write_bytes(b"")
    (root / "notes.txt").write_text("not a run\n")
    (root / "bad.yaml").write_text("model: [unclosed\n")
    (root / "cfg.yaml").write_text("model: mean\nsplit: combo\n")
    (root / "conds.txt").write_text("G1+G2\n# comment\nG3+ctrl\n")
    shared = Path(__file__).resolve().parents[2] / "shared" / "data" / "norman2019_subset" / "devel.h5ad"
    if shared.is_file():  # the real subset, imported by the download command's --from-file cases
        (root / "devel.h5ad").write_bytes(shared.read_bytes())
    go = root / "go-placed"  # GO files placed by hand: download-go records them without fetching
    go.mkdir()
    (go / "go-basic.obo").write_text("format-version: 1.2\ndata-version: releases/2024-01-01\n\n[Term]\nid: GO:1\n")
    import gzip

    (go / "goa_human.gaf.gz").write_bytes(gzip.compress(b"!gaf-version: 2.2\nUniProtKB\tP1\tG1\t\tGO:1\n"))
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        assert train.main(["--data", str(data), "--model", "additive", "--split", "combo", "--out", str(root / "run"),
                           "--no-progress", "-q"]) == 0
    return root


def _pick(rng: random.Random, values: list[str]) -> str:
    return values[rng.randrange(len(values))]


def _train_case(rng: random.Random, w: Path) -> list[str]:
    options = {
        "--epochs": BAD_NUMBERS + ["1", "-3"],
        "--batch-size": BAD_NUMBERS + ["4"],
        "--lr": BAD_NUMBERS + ["1e-3", "-0.01"],
        "--weight-decay": BAD_NUMBERS + ["1e-4"],
        "--patience": BAD_NUMBERS + ["2"],
        "--seed": BAD_NUMBERS + ["3"],
        "--split-seed": BAD_NUMBERS + ["2"],
        "--data-seed": BAD_NUMBERS,
        "--max-steps": BAD_NUMBERS + ["2"],
        "--threads": BAD_NUMBERS + ["1"],
        "--n-top-genes": BAD_NUMBERS + ["10"],
        "--model": ["additive", "mean", "no_change", "nope", "priorgnn", "transformer", ""],
        "--model-set": ["hiden=8", "hidden=abc", "hidden=-4", "hidden=8", "fallback=zero", "fallback=bogus", "=3",
                        "novalue", "d_model=0", "pert_dropout=1.5", "hidden=", "use_go=maybe", "hidden=[1,2]"],
        "--split": ["combo", "random", "simulation", "bogus"],
        "--split-set": ["test_frac=2", "tset_frac=0.3", "test_frac=0.5", "seed=-1", "val_frac=abc", "kind=x",
                        "test_frac=", "=1", "require_subgroups=5"],
        "--style": ["gears", "bogus", "scperturb"],
        "--go": ["none", "auto", str(w / "missing.npz"), str(w / "notes.txt")],
        "--coexpression": ["none", str(w / "missing.npz")],
        "--out": [str(w / "notes.txt"), str(w / "run"), str(w / "new-run"), str(w / "d.h5ad"), ""],
        "--data": [str(w / "d.h5ad"), str(w / "missing.h5ad"), str(w / "empty.h5ad"), str(w / "notes.txt"), "bogus"],
        "--config": [str(w / "missing.yaml"), str(w / "bad.yaml"), str(w / "cfg.yaml"), str(w / "notes.txt")],
        "--sim-set": ["bogus=1", "n_doubles=abc", "x"],
        "--go-degrade": ["dropout:2", "bogus", "dropout:abc"],
        "--split-file": [str(w / "missing.json"), str(w / "notes.txt")],
        "--condition-column": ["nope"],
        "--layer": ["nope"],
        "--control-label": ["non-targeting"],
        "--select": ["dataset=x", "=1", "condition=ctrl", "nope=1", "condition=", "condition=G1+ctrl,ctrl"],
        "--separator": ["_", "+", ""],
        "--accelerator": ["bogus"],
        "--devices": ["0", "-1", "x"],
    }
    flags = ["--resume", "--overwrite", "--untrained", "--summaries-only", "--normalize", "--drop-small-conditions",
             "--unknown-flag", "--list-models", "--allow-prior-free"]
    # cheap, deterministic defaults first: a chosen value later on the line overrides them
    argv = ["--data", str(w / "d.h5ad"), "--split", "combo", "--go", "none", "--epochs", "1", "--model-set",
            "hidden=8" if rng.random() < 0.5 else "fallback=mean", "--model", "additive", "--out",
            str(w / f"out{rng.randrange(10**9)}")]
    for _ in range(rng.randint(1, 4)):
        if rng.random() < 0.8:
            opt = _pick(rng, sorted(options))
            argv += [opt, _pick(rng, options[opt])]
        else:
            argv.append(_pick(rng, flags))
    return argv + ["--no-progress", "-q"]


def _predict_case(rng: random.Random, w: Path) -> list[str]:
    run = _pick(rng, [str(w / "run")] * 4 + [str(w / "missing-run"), str(w / "notes.txt"), str(w)])
    options = {
        "--conditions": ["G1+G2", "NOTAGENE+ctrl", "G1+G2+G3", "", "g0+G1", ",,,", "ctrl", "G1", "+", "G1+G1"],
        "--conditions-file": [str(w / "missing.txt"), str(w / "conds.txt"), str(w / "d.h5ad")],
        "--all-pairs": ["G1,G2", "G1", ",".join(f"G{i}" for i in range(60)), "G1,NOPE"],
        "--top": BAD_NUMBERS + ["5"],
        "--out": [str(w / "notes.txt"), str(w / f"pred{rng.randrange(10**9)}")],
        "--name": ["predict", "../x", "a/b", "", "t"],
    }
    flags = ["--overwrite", "--yes", "--allow-fallback", "--allow-prior-free", "--bogus"]
    argv = ["predict", run]
    for _ in range(rng.randint(1, 4)):
        if rng.random() < 0.75:
            opt = _pick(rng, sorted(options))
            argv += [opt, _pick(rng, options[opt])]
        else:
            argv.append(_pick(rng, flags))
    return argv + ["-q"]


def _evaluate_case(rng: random.Random, w: Path) -> list[str]:
    options = {
        "--n-boot": BAD_NUMBERS + ["999", "1000"],
        "--seed": BAD_NUMBERS,
        "--ceiling-repeats": BAD_NUMBERS,
        "--ceiling-seed": BAD_NUMBERS,
        "--baselines": ["bogus", "mean", str(w / "run")],
        "--metrics": ["bogus", "mse"],
        "--headline": ["bogus"],
        "--ci-style": ["bogus", "pm"],
        "--overwrite": None,
        "--out": [str(w / "notes.txt"), str(w / f"rep{rng.randrange(10**9)}")],
    }
    argv = [_pick(rng, ["report", "study"]) if rng.random() < 0.2 else "report"]
    if argv[0] == "study":  # refused at parse time only: a grid is far too long for a fuzz case
        return argv + [_pick(rng, ["--grid", "--accelerator", "--bogus"]), _pick(rng, ["bogus", "x", ""]), "--quiet"]
    argv.append(_pick(rng, [str(w / "run"), str(w / "missing-run"), str(w / "notes.txt"), str(w)]))
    for _ in range(rng.randint(1, 3)):
        opt = _pick(rng, sorted(options))
        argv += [opt] if options[opt] is None else [opt, _pick(rng, options[opt])]
    if rng.random() < 0.9:  # mostly refused cheaply; a valid report takes seconds
        argv += ["--n-boot", _pick(rng, BAD_NUMBERS + ["999"])]
    return argv + ["--no-figures", "--no-ceiling", "--quiet"]


def _simulate_case(rng: random.Random, w: Path) -> list[str]:
    options = {
        "--preset": ["tiny", "bogus", ""],
        "--seed": BAD_NUMBERS,
        "--set": ["n_doubles=abc", "bogus=1", "=1", "x", "n_genes=-5"],
        "--go-recall": BAD_NUMBERS + ["1.5"],
        "--go-false-rate": BAD_NUMBERS,
        "--go-shuffle": BAD_NUMBERS + ["2"],
        "--go-seed": BAD_NUMBERS,
        "--out": [str(w / "notes.txt"), str(w / "d.h5ad"), str(w / "run")],
    }
    argv = ["--list-settings"] if rng.random() < 0.5 else []
    for _ in range(rng.randint(1, 3)):
        opt = _pick(rng, sorted(options))
        argv += [opt, _pick(rng, options[opt])]
    return argv + ["--quiet"]


def _knowledge_case(rng: random.Random, w: Path) -> list[str]:
    cmd = _pick(rng, ["build-go", "build-coexpression", "build-edgelist", "degrade", "info", "bogus"])
    options = {
        "--obo": [str(w / "missing.obo"), str(w / "notes.txt")],
        "--gaf": [str(w / "missing.gaf"), str(w / "notes.txt")],
        "--tsv": [str(w / "missing.tsv"), str(w / "notes.txt")],
        "--graph": [str(w / "missing.npz"), str(w / "notes.txt")],
        "--data": [str(w / "d.h5ad"), str(w / "missing.h5ad")],
        "--split": [str(w / "missing.json"), str(w / "run" / "split.json")],
        "--op": ["bogus", "dropout"],
        "--frac": BAD_NUMBERS + ["2"],
        "--k": BAD_NUMBERS,
        "--threshold": BAD_NUMBERS,
        "--out": [str(w / "notes.txt"), str(w / "run" / "graph.npz")],
    }
    argv = [cmd] if cmd != "info" else [cmd, _pick(rng, [str(w / "missing.npz"), str(w / "notes.txt")])]
    for _ in range(rng.randint(1, 4)):
        opt = _pick(rng, sorted(options))
        argv += [opt, _pick(rng, options[opt])]
    return argv + ["--quiet"]


def _data_case(rng: random.Random, w: Path) -> list[str]:
    cmd = _pick(rng, ["download"] * 6 + ["list", "bogus"])
    dest = ["--dest", _pick(rng, [str(w / "dl")] * 4 + [str(w / "notes.txt"), str(w / "dl2")])]
    if cmd != "download":
        return [cmd, *dest] + ([_pick(rng, ["--bogus", "-x"])] if rng.random() < 0.3 else [])
    name = _pick(rng, ["norman2019_subset"] * 3 + ["norman", "adamson", "nosuch", ""])
    options = {
        "--from-file": [str(w / "devel.h5ad"), str(w / "d.h5ad"), str(w / "notes.txt"), str(w / "missing.h5ad"),
                        str(w / "empty.h5ad"), str(w)],
        "--url": ["ftp://example.org/x", "notaurl", "file:///nothing"],  # never http(s): no network
        "--licence-url": ["ftp://example.org/LICENSE"],
        "--timeout": BAD_NUMBERS + ["5"],
        "--dest": [str(w / "dl"), str(w / "notes.txt"), str(w / "d.h5ad")],
    }
    flags = ["--force", "--keep-archive", "--no-progress", "--bogus"]
    argv = [cmd, name, *dest, "--url", "ftp://example.org/x", "--licence-url", "ftp://example.org/LICENSE"]
    for _ in range(rng.randint(1, 3)):
        if rng.random() < 0.75:
            opt = _pick(rng, sorted(options))
            argv += [opt, _pick(rng, options[opt])]
        else:
            argv.append(_pick(rng, flags))
    return argv


def _go_case(rng: random.Random, w: Path) -> list[str]:
    options = {
        "--dest": [str(w / "go-placed"), str(w / "go-empty"), str(w / "notes.txt")],
        "--url-obo": ["ftp://example.org/obo", "notaurl"],  # never http(s): no network
        "--url-gaf": ["ftp://example.org/gaf", ""],
        "--timeout": BAD_NUMBERS + ["5"],
    }
    flags = ["--force", "--no-progress", "--bogus"]
    argv = ["--dest", str(w / "go-placed"), "--url-obo", "ftp://example.org/obo", "--url-gaf", "ftp://example.org/gaf"]
    for _ in range(rng.randint(0, 3)):
        if rng.random() < 0.7:
            opt = _pick(rng, sorted(options))
            value = _pick(rng, options[opt])
            if opt == "--url-gaf" and not value:  # an empty URL means the default (the internet): not here
                value = "notaurl"
            argv += [opt, value]
        else:
            argv.append(_pick(rng, flags))
    return argv


GENERATORS = {"train": _train_case, "predict": _predict_case, "evaluate": _evaluate_case,
              "simulate": _simulate_case, "knowledge": _knowledge_case, "data": _data_case,
              "download-go": _go_case}


def _run(tool: str, argv: list[str]) -> tuple[int, str]:
    from robustness_cases import _tool

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            status = _tool("train" if tool == "predict" else tool)(argv)
        except SystemExit as exc:  # argparse: --help or a parse error
            status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:  # noqa: BLE001 - an escaped exception is the failure this test looks for
            import traceback

            traceback.print_exc(file=err)
            status = -1
        finally:
            for h in logging.getLogger().handlers:
                h.flush()
    return status, err.getvalue()


def fuzz(world: Path, n: int, seed: int) -> dict[str, int]:
    """Run ``n`` generated cases; return counts per outcome. Fails at the first bad case."""
    rng = random.Random(seed)
    counts = {"cases": 0, "exit 0": 0, "exit 2": 0}
    tools = sorted(GENERATORS)
    for i in range(n):
        tool = tools[i % len(tools)]
        argv = GENERATORS[tool](rng, world)
        before = _snapshot(world)
        status, stderr = _run(tool, argv)
        after = _snapshot(world)
        lines = [ln for ln in stderr.splitlines() if ln.strip()]
        where = f"case {i} (seed {seed}): {tool} {argv}\nstatus {status}\n{stderr}"
        assert "Traceback" not in stderr, where
        assert status in (0, 2), where
        if status == 2:
            assert len(lines) == 1, where
        downloaded = status == 0 and tool in ("data", "download-go") and "--dest" in argv
        if downloaded:  # a successful download may update what is in its own --dest (files, manifest)
            dest = Path(argv[len(argv) - 1 - argv[::-1].index("--dest") + 1]).name + "/"
            before = {f: h for f, h in before.items() if not f.startswith(dest)}
        updated = status == 0 and ("--resume" in argv or "--overwrite" in argv or tool == "predict")
        changed = [f for f, h in before.items() if after.get(f) != h]
        if updated:  # a successful --resume/--overwrite may update the run it names; a prediction may add files
            out = argv[argv.index("--out") + 1] if "--out" in argv else ""
            named = Path(out).name + "/" if out else ""
            changed = [f for f in changed if not (named and f.startswith(named))
                       and not (tool == "predict" and "/predictions/" in f"/{f}")
                       and not (tool == "evaluate" and "--overwrite" in argv and "/report/" in f"/{f}")]
        assert not changed, f"{where}\nchanged: {changed}"
        counts["cases"] += 1
        counts[f"exit {status}"] += 1
    return counts
