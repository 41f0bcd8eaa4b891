"""What the README states in public: the units of its speed claims and the metric of its claims about
unseen perturbations. The numbers themselves are checked against the results files by
``benchmarks/claims.py --check`` (``make test`` runs it)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from priorgnn.metrics.registry import METRICS, UNSEEN_SUBGROUPS, get_metric

README = Path(__file__).resolve().parents[1] / "README.md"


def _section(text: str, title_start: str) -> str:
    """The Markdown section whose heading starts with ``title_start``, up to the next heading of the
    same or a higher level."""
    m = re.search(rf"^(#+) {re.escape(title_start)}.*$", text, flags=re.M)
    if m is None:
        raise AssertionError(f"README has no section '{title_start}'")
    level = len(m.group(1))
    rest = text[m.end():]
    end = re.search(rf"^#{{1,{level}}} ", rest, flags=re.M)
    return rest[: end.start()] if end else rest


def performance_problems(text: str) -> list[str]:
    """Why the performance section would mislead: it must give a per-optimiser-step ratio and an
    end-to-end ratio, and no ratio per epoch (epochs differ between the models)."""
    sec = _section(text, "Side by side with the reference GEARS")
    problems = []
    lines = sec.splitlines()
    ratio = re.compile(r"\d[\d.,]*\s*×")
    if not any("per optimiser step" in ln and ratio.search(ln) for ln in lines):
        problems.append("no per-optimiser-step ratio")
    if not any("end to end" in ln and ratio.search(ln) for ln in lines):
        problems.append("no end-to-end ratio")
    for ln in lines:
        if re.search(r"per (training )?epoch", ln) and ratio.search(ln):
            problems.append(f"a per-epoch ratio: {ln.strip()}")
    return problems


def _metric_names(cell: str) -> list[str]:
    names = sorted(METRICS, key=len, reverse=True)  # longest first: pearson_delta_excl_target before pearson_delta
    found = []
    for n in names:
        if re.search(rf"(?<![\w]){re.escape(n)}(?![\w])", cell):
            found.append(n)
            cell = re.sub(rf"(?<![\w]){re.escape(n)}(?![\w])", " ", cell)
    return found


def unseen_claim_problems(text: str) -> list[str]:
    """Lines of README tables and prose that state an unseen subgroup's result with a metric that
    scores the perturbed genes together with the rest.

    Rules: a table header cell that names an unseen subgroup and a metric; a table whose rows are
    unseen subgroups and whose header names metrics; a table whose columns are unseen subgroups and
    whose caption line (the paragraph just above it) or first column names metrics; a prose line that
    names an unseen subgroup and a metric. Each named metric must leave the targets out (its
    registry scope is not ``'all'``)."""
    problems = []
    lines = text.splitlines()

    def bad(names, where):
        for n in names:
            if get_metric(n).scope == "all":
                problems.append(f"{where}: `{n}` includes the perturbed genes")

    i = 0
    while i < len(lines):
        ln = lines[i]
        if ln.startswith("|") and i + 1 < len(lines) and re.match(r"^\|[\s:|-]+\|$", lines[i + 1].strip()):
            header = [c.strip() for c in ln.strip().strip("|").split("|")]
            j = i + 2
            rows = []
            while j < len(lines) and lines[j].startswith("|"):
                rows.append([c.strip() for c in lines[j].strip().strip("|").split("|")])
                j += 1
            unseen_cols = [k for k, h in enumerate(header) if any(s in h for s in UNSEEN_SUBGROUPS)]
            for k in unseen_cols:
                names = _metric_names(header[k])
                if names:
                    bad(names, f"line {i + 1}, column '{header[k]}'")
                else:  # the metric is named by the table's first column, its top-left cell or the caption
                    caption = " ".join(lines[max(0, i - 3):i])
                    for r in rows:
                        bad(_metric_names(r[0]), f"line {i + 1}, row '{r[0]}', column '{header[k]}'")
                    bad(_metric_names(header[0]), f"line {i + 1}, column '{header[k]}'")
                    if not any(_metric_names(r[0]) for r in rows) and not _metric_names(header[0]):
                        bad(_metric_names(caption), f"line {i + 1} (caption), column '{header[k]}'")
            for r in rows:  # a cell that names an unseen subgroup and a metric
                for c in r:
                    if any(s in c for s in UNSEEN_SUBGROUPS):
                        bad(_metric_names(c), f"table at line {i + 1}, cell '{c}'")
            for r in rows:  # rows that are unseen subgroups: metrics in the header or in the row
                if r and any(r[0].startswith(s) for s in UNSEEN_SUBGROUPS):
                    metric_cells = [c for c in r[1:] if _metric_names(c)]
                    for c in metric_cells:
                        bad(_metric_names(c), f"table at line {i + 1}, row '{r[0]}'")
                    if not metric_cells:
                        bad([n for h in header[1:] for n in _metric_names(h)], f"table at line {i + 1}, row '{r[0]}'")
            i = j
            continue
        if any(s in ln for s in UNSEEN_SUBGROUPS) and not ln.startswith("```"):
            bad(_metric_names(ln), f"line {i + 1}")
        i += 1
    return problems


def test_readme_speed_is_stated_per_step_and_end_to_end():
    assert performance_problems(README.read_text()) == []


def test_readme_unseen_claims_leave_the_perturbed_genes_out():
    assert unseen_claim_problems(README.read_text()) == []


@pytest.mark.parametrize("text, expected", [
    ("## Side by side with the reference GEARS\n| wall time per training epoch | 3,247× faster |\n",
     ["no per-optimiser-step ratio", "no end-to-end ratio",
      "a per-epoch ratio: | wall time per training epoch | 3,247× faster |"]),
    ("## Side by side with the reference GEARS\nper optimiser step: 7× faster\nend to end: 20× faster\n", []),
    ("## Side by side with the reference GEARS\nper optimiser step: 7×\nend to end: 20×\nper epoch 300×\n",
     ["a per-epoch ratio: per epoch 300×"]),
])
def test_performance_rule_on_made_up_sections(text, expected):
    assert performance_problems(text) == expected


def test_unseen_rule_on_made_up_tables():
    ok = ("| model | unseen_single pearson_delta_excl_target | combo_seen2 pearson_delta |\n|---|---|---|\n"
          "| a | 0.1 | 0.9 |\n")
    assert unseen_claim_problems(ok) == []
    header = "| model | unseen_single pearson_delta | combo_seen2 pearson_delta |\n|---|---|---|\n| a | 0.1 | 0.9 |\n"
    assert len(unseen_claim_problems(header)) == 1
    caption = "Metric: `pearson_delta` against the truth:\n\n| model | unseen_single | combo_seen0 |\n|---|---|---|\n| a | 1 | 2 |\n"
    assert len(unseen_claim_problems(caption)) == 2
    rows = "| subgroup | metric | a |\n|---|---|---|\n| unseen_single | mse_top20_de | 1 |\n| combo_seen2 | mse | 2 |\n"
    assert len(unseen_claim_problems(rows)) == 1
    cell = "| | PriorGNN |\n|---|---|\n| pearson_delta unseen_single / combo_seen2 | 0.3 / 0.8 |\n"
    assert len(unseen_claim_problems(cell)) == 1
    prose = "PriorGNN leads on unseen_single (pearson_delta 0.6).\n"
    assert len(unseen_claim_problems(prose)) == 1
    assert unseen_claim_problems("On unseen_single, pearson_delta_excl_target is 0.1.\n") == []
