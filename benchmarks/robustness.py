#!/usr/bin/env python
"""Run the bad-input catalogue (benchmarks/robustness_cases.py) and the command-line fuzz
(benchmarks/fuzz_cli.py), and write the counts table.

    python benchmarks/robustness.py [--out benchmarks/results/robustness.md] [--fuzz 2000 --fuzz-seed 1]

For each case: the tool's exit status, whether the message is the expected clear one, whether a
traceback appeared, and whether any data were lost (a pre-existing file changed or a failed command
left a final output behind). Every number of the page is also written to ``robustness.csv`` (one row
per case) and ``robustness.json`` (the totals and the fuzz counts) beside it.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import io
import json
import os
import sys
import tempfile
from pathlib import Path

from priorgnn.io import write_json, write_text
from robustness_cases import CASES, run_case

ROOT = Path(__file__).resolve().parent.parent


def _load_tools() -> None:
    """Make ``import train`` and ``import evaluate`` (in the cases and the fuzz) find the repository's
    ``train.py`` and ``evaluate.py``: scripts beside the installed package, not part of it, loaded here
    by path."""
    for name in ("train", "evaluate"):
        if name in sys.modules:
            continue
        spec = importlib.util.spec_from_file_location(name, ROOT / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "robustness.md"))
    p.add_argument("--fuzz", type=int, default=2000, help="fuzz cases to run (0: none; default 2000)")
    p.add_argument("--fuzz-seed", type=int, default=1, help="seed of the fuzz cases (default 1, as the slow test)")
    args = p.parse_args()
    _load_tools()
    rows = []
    with tempfile.TemporaryDirectory() as root:
        os.environ.setdefault("PRIORGNN_CACHE_DIR", str(Path(root) / "cache"))
        for i, case in enumerate(CASES):
            tmp = Path(root) / f"case{i}"
            tmp.mkdir()
            cwd = os.getcwd()
            os.chdir(tmp)
            try:
                out = run_case(case, tmp)
            finally:
                os.chdir(cwd)
            lines = out.message.splitlines()
            # the error with its continuation lines, or (for a logged repair) the line saying it
            at = next((i for i, ln in enumerate(lines) if "error:" in ln), None)
            if at is not None:
                shown = " ".join(ln.strip() for ln in lines[at:at + 3])
            else:
                shown = next((ln for ln in lines if case.expect in ln), lines[-1] if lines else "")
            shown = shown.replace(str(tmp), "<tmp>").replace(root, "<tmp>").replace("|", "\\|")
            rows.append((case, out, shown[:220]))
            print(f"{'ok ' if out.ok else 'BAD'} {case.name}", file=sys.stderr)
    n = len(rows)
    clear = sum(o.clear and not o.traceback for _, o, _ in rows)
    lost = sum(bool(o.data_loss) for _, o, _ in rows)
    fuzz = _fuzz(args.fuzz, args.fuzz_seed) if args.fuzz else None
    lines = [
        "# Bad-input catalogue", "",
        "Command: `python benchmarks/robustness.py` (the same cases run as tests in `tests/test_robustness.py`; "
        "numbers also in `robustness.csv` and `robustness.json`).", "",
        f"**Cases tried: {n}. Clear error (or documented, logged repair, or one-line Ctrl-C): {clear}. "
        f"Cases with any data loss: {lost}.**", "",
        "Exit 2: an error the user can fix, one message naming the problem and the fix. Exit 0: a documented "
        "repair or an allowed action, logged. Exit 130: Ctrl-C, one line saying what was kept and how to resume.",
        "",
    ]
    if fuzz is not None:
        lines += [
            f"**Command-line fuzz** (`tests/test_fuzz_cli.py`, seed {fuzz['seed']}): {fuzz['cases']:,} generated "
            f"cases over train.py, train.py predict, evaluate.py, `python -m priorgnn.simulate` and "
            f"`python -m knowledge`; exit 0: {fuzz['exit 0']:,}, exit 2 with one line on stderr: {fuzz['exit 2']:,}; "
            f"tracebacks, other exits and changed inputs or runs: {fuzz['failures']} ({fuzz['seconds']:.0f} s). "
            "The default test suite runs 300 cases (seed 0), `pytest -m slow` 2,000 (seed 1).", "",
        ]
    lines += [
        "| case | exit | clear | traceback | data loss | the message |",
        "|---|---:|:---:|:---:|:---:|---|",
    ]
    for case, o, msg in rows:
        lines.append(f"| {case.name} | {o.status} | {'yes' if o.clear else 'NO'} | {'YES' if o.traceback else 'no'} "
                     f"| {', '.join(o.data_loss) or 'none'} | {msg} |")
    write_text(args.out, "\n".join(lines) + "\n")
    out = Path(args.out)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["case", "exit", "expected_exit", "clear", "traceback", "data_loss"])
    for case, o, _ in rows:
        w.writerow([case.name, o.status, case.status, o.clear, o.traceback, ";".join(o.data_loss)])
    write_text(out.with_suffix(".csv"), buf.getvalue())
    write_json(out.with_suffix(".json"), {"cases": n, "clear": clear, "data_loss": lost, "fuzz": fuzz})
    print(f"{n} cases, {clear} clear, {lost} with data loss -> {args.out}")
    ok = clear == n and lost == 0 and (fuzz is None or fuzz["failures"] == 0)
    return 0 if ok else 1


def _fuzz(n: int, seed: int) -> dict:
    """Run ``n`` fuzz cases of benchmarks/fuzz_cli.py in a fresh folder; the counts (failures: 0 or 1,
    since the fuzz stops at the first bad case)."""
    import time

    from fuzz_cli import fuzz, make_world

    with tempfile.TemporaryDirectory() as root:
        w = make_world(Path(root))
        cwd = os.getcwd()
        os.chdir(w)
        t = time.perf_counter()
        try:
            counts = {**fuzz(w, n, seed), "failures": 0}
        except AssertionError as exc:
            print(str(exc)[:2000], file=sys.stderr)
            counts = {"cases": n, "exit 0": 0, "exit 2": 0, "failures": 1}
        finally:
            os.chdir(cwd)
        return {**counts, "seed": seed, "seconds": round(time.perf_counter() - t, 1)}


if __name__ == "__main__":
    sys.exit(main())
