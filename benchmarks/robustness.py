#!/usr/bin/env python
"""Run the bad-input catalogue (tests/robustness_cases.py) and write the counts table.

    python benchmarks/robustness.py [--out benchmarks/results/robustness.md]

For each case: the tool's exit status, whether the message is the expected clear one, whether a
traceback appeared, and whether any data were lost (a pre-existing file changed or a failed command
left a final output behind).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from priorgnn._io import write_text  # noqa: E402
from tests.robustness_cases import CASES, run_case  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "robustness.md"))
    args = p.parse_args()
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
    lines = [
        "# Bad-input catalogue", "",
        "Command: `python benchmarks/robustness.py` (the same cases run as tests in `tests/test_robustness.py`).", "",
        f"**Cases tried: {n}. Clear error (or documented, logged repair): {clear}. Cases with any data loss: {lost}.**", "",
        "| case | exit | clear | traceback | data loss | the message |",
        "|---|---:|:---:|:---:|:---:|---|",
    ]
    for case, o, msg in rows:
        lines.append(f"| {case.name} | {o.status} | {'yes' if o.clear else 'NO'} | {'YES' if o.traceback else 'no'} "
                     f"| {', '.join(o.data_loss) or 'none'} | {msg} |")
    write_text(args.out, "\n".join(lines) + "\n")
    print(f"{n} cases, {clear} clear, {lost} with data loss -> {args.out}")
    return 0 if clear == n and lost == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
