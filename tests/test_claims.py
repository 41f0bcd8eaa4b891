"""benchmarks/claims.py: stated numbers against their results files, rounding, stale sources."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import claims  # noqa: E402
from claims import (  # noqa: E402
    ClaimError,
    Source,
    TableClaim,
    ValueClaim,
    code_fingerprint,
    long_format_cells,
    matches,
    parse_numbers,
    run_checks,
)

GIT_ENV = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env=GIT_ENV).stdout.strip()


# ---------------------------------------------------------------------------- rounding and parsing

def test_parse_numbers_reads_signs_separators_and_decimals():
    got = [(s.value, s.decimals) for s in parse_numbers("0.559 ± 0.066 | −0.008 | 5,175 s | 3,247× | 131 / 131")]
    assert got == [(0.559, 3), (0.066, 3), (-0.008, 3), (5175.0, 0), (3247.0, 0), (131.0, 0), (131.0, 0)]
    # identifiers are not numbers
    assert parse_numbers("combo_seen1 G0017 top20") == []


@pytest.mark.parametrize(("stated", "source", "ok"), [
    ("0.56", 0.5649, True),     # rounds to 0.56
    ("0.56", 0.5551, True),
    ("0.56", 0.5651, False),    # rounds to 0.57
    ("0.560", 0.5649, False),   # three decimals claim more: 0.5649 rounds to 0.565
    ("0.560", 0.5604, True),
    ("5,175", 5175.4, True),
    ("5,175", 5175.6, False),
    ("−0.008", -0.0084, True),
    ("−0.008", 0.008, False),
    ("0.000", float("nan"), False),  # a missing source value never matches
])
def test_rounding_tolerance_is_the_stated_decimals(stated, source, ok):
    (s,) = parse_numbers(stated)
    assert matches(s, source) is ok


# ---------------------------------------------------------------------------- the committed tree

def test_committed_readme_and_results_match_their_sources():
    # Values only: whether a source is stale depends on commits made after it by any change to
    # the code it measures, which `make test` runs `benchmarks/claims.py --check` for; the
    # staleness logic itself is tested on constructed repositories below.
    report = run_checks(ROOT, staleness=False)
    assert report.errors == []
    assert [o.describe() for o in report.failures] == []
    assert any(o.doc == "README.md" for o in report.outcomes)
    assert len(report.outcomes) >= 20


def _copy_claimed_files(dest: Path) -> None:
    for claim in claims.REGISTRY:
        for rel in [claim.doc, *(s.path for s in claim.sources)]:
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / rel, dest / rel)


def test_an_edited_readme_number_fails_and_is_named(tmp_path):
    _copy_claimed_files(tmp_path)
    base = run_checks(tmp_path, staleness=False)
    assert base.ok
    target = next(o for o in base.outcomes if o.doc == "README.md" and len(parse_numbers(o.stated)) >= 1)
    first = parse_numbers(target.stated)[0]
    wrong = f"{first.value + 10 * 10.0 ** -first.decimals:.{first.decimals}f}"
    lines = (tmp_path / "README.md").read_text(encoding="utf-8").splitlines(keepends=True)
    line = lines[target.line - 1]
    assert line.count(f"| {target.stated} |") == 1
    lines[target.line - 1] = line.replace(f"| {target.stated} |", f"| {target.stated.replace(first.text, wrong, 1)} |")
    (tmp_path / "README.md").write_text("".join(lines), encoding="utf-8")

    report = run_checks(tmp_path, staleness=False)
    assert not report.ok
    assert len(report.failures) == 1
    (bad,) = report.failures
    assert (bad.doc, bad.line, bad.where) == ("README.md", target.line, target.where)
    assert wrong in bad.stated
    text = bad.describe()
    assert f"README.md:{target.line}" in text and wrong in text and target.source in text
    # and the command line exits 1 with that line
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "claims.py"), "--check", "--root", str(tmp_path)],
                          capture_output=True, text=True)
    # the copy is not a git repository: the staleness part reports an error too, but the mismatch is named
    assert proc.returncode == 1
    assert f"MISMATCH README.md:{target.line}" in proc.stdout


# ---------------------------------------------------------------------------- constructed claims

DOC = """# Results

## Accuracy

| model | seeds | unseen pearson | fit s |
|---|---|---|---|
| alpha | 3 | 0.559 ± 0.066 | 14 |
| beta | 3 | 0.101 ± 0.010 | – |

The run peaked at 8.95 GiB.
"""


def _frame() -> pd.DataFrame:
    return pd.DataFrame({"model": ["alpha", "beta"], "subgroup": ["unseen", "unseen"],
                         "metric": ["pearson", "pearson"], "mean": [0.55949, 0.1012], "sd": [0.0661, 0.0104],
                         "n_seeds": [3, 3], "fit_s": [13.6, None]})


def _cells(frames, label, head):
    if head == "seeds":
        return [float(frames[0].set_index("model").loc[label, "n_seeds"])]
    if head == "fit s":
        v = frames[0].set_index("model").loc[label, "fit_s"]
        return [] if pd.isna(v) else [float(v)]
    return long_format_cells(row_column="model", header=r"(?P<subgroup>\w+) (?P<metric>\w+)")(frames, label, head)


def _table(code=("code",), source="results/acc.csv") -> TableClaim:
    return TableClaim(name="acc", doc="doc.md", anchor=(r"^## Accuracy",), sources=(Source(source, code=code),),
                      cell=_cells)


def _value() -> ValueClaim:
    return ValueClaim(name="peak", doc="doc.md", pattern=r"peaked at (?P<value>\S+) GiB",
                      sources=(Source("results/mem.json", code=("code",)),), value=lambda f: f[0]["peak_gib"])


def _write(root: Path, doc: str = DOC, frame: pd.DataFrame | None = None) -> None:
    (root / "results").mkdir(parents=True, exist_ok=True)
    (root / "code").mkdir(exist_ok=True)
    (root / "doc.md").write_text(doc, encoding="utf-8")
    (frame if frame is not None else _frame()).to_csv(root / "results" / "acc.csv", index=False)
    (root / "results" / "mem.json").write_text('{"peak_gib": 8.9452}', encoding="utf-8")


def test_table_and_value_claims_pass_and_fail_by_cell(tmp_path):
    _write(tmp_path)
    report = run_checks(tmp_path, [_table(), _value()], staleness=False)
    assert report.ok, report.render()
    assert len(report.outcomes) == 1 + 2 * 2 + 1  # fit s of alpha (beta states none); seeds, pearson of both; prose

    _write(tmp_path, DOC.replace("0.066", "0.076").replace("8.95", "8.96"))
    report = run_checks(tmp_path, [_table(), _value()], staleness=False)
    assert sorted((o.line, o.stated) for o in report.failures) == [(7, "0.559 ± 0.076"), (10, "8.96")]


def test_wide_format_cells_read_one_source_row_per_table_row(tmp_path):
    _write(tmp_path)
    claim = TableClaim(name="acc", doc="doc.md", anchor=(r"^## Accuracy",), sources=(Source("results/acc.csv"),),
                       cell=claims.wide_format_cells(row_column="model", columns={"unseen pearson": ("mean", "sd"),
                                                                                  "seeds": ("n_seeds",)}))
    report = run_checks(tmp_path, [claim], staleness=False)
    assert report.ok and len(report.outcomes) == 4
    _write(tmp_path, DOC.replace("| 0.101 ± 0.010 |", "| 0.101 ± 0.011 |"))
    (bad,) = run_checks(tmp_path, [claim], staleness=False).failures
    assert (bad.line, bad.stated, bad.expected) == (8, "0.101 ± 0.011", [0.1012, 0.0104])


def test_a_cell_without_source_row_fails_rather_than_passes(tmp_path):
    _write(tmp_path, DOC.replace("| beta | 3 | 0.101 ± 0.010 | – |",
                                 "| beta | 3 | 0.101 ± 0.010 | – |\n| gamma | 3 | 0.200 ± 0.010 | – |"))
    report = run_checks(tmp_path, [_table()], staleness=False)
    # each of gamma's three cells fails; alpha and beta still pass
    assert [(o.line, o.where.split(", ")[2]) for o in report.failures] == \
        [(9, "column 'seeds'"), (9, "column 'unseen pearson'"), (9, "column 'fit s'")]
    assert all(o.expected is None for o in report.failures)
    assert sum(o.ok for o in report.outcomes) == 5  # alpha 3 cells, beta 2 (its "–" states nothing)


def test_missing_table_or_ambiguous_pattern_is_an_error(tmp_path):
    _write(tmp_path, DOC.replace("## Accuracy", "## Something else") + "\nIt peaked at 9.00 GiB again.\n")
    report = run_checks(tmp_path, [_table(), _value()], staleness=False)
    assert not report.ok
    assert len(report.errors) == 2
    assert "no line matching" in report.errors[0] and "matches 2 lines" in report.errors[1]


# ---------------------------------------------------------------------------- stale sources

def _repo(tmp_path: Path, frame: pd.DataFrame | None = None) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    _write(repo, frame=frame)
    (repo / "code" / "model.py").write_text("X = 1\n", encoding="utf-8")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "code and results")
    return repo


def test_source_last_touched_before_a_code_change_is_stale(tmp_path):
    repo = _repo(tmp_path)
    assert run_checks(repo, [_table()]).ok
    (repo / "code" / "model.py").write_text("X = 2\n", encoding="utf-8")
    _git(repo, "commit", "-qam", "change the model")
    report = run_checks(repo, [_table()])
    assert not report.ok and report.failures == []
    assert len(report.stale) == 1 and "results/acc.csv" in report.stale[0] and "change the model" in report.stale[0]
    # a change elsewhere does not make it stale; regenerating the results makes it current
    assert run_checks(repo, [_table(code=("doc.md",))]).ok
    (repo / "results" / "acc.csv").write_text((repo / "results" / "acc.csv").read_text() + "\n", encoding="utf-8")
    _git(repo, "commit", "-qam", "rerun")
    assert run_checks(repo, [_table()]).ok


def test_recorded_commit_older_than_the_code_is_stale_even_if_the_file_was_touched_later(tmp_path):
    repo = _repo(tmp_path)
    first = _git(repo, "rev-parse", "HEAD")
    (repo / "code" / "model.py").write_text("X = 2\n", encoding="utf-8")
    _git(repo, "commit", "-qam", "change the model")
    # the results file, produced at the first commit, is re-committed afterwards (e.g. reformatted)
    _write(repo, frame=_frame().assign(git_commit=first))
    _git(repo, "commit", "-qam", "results recommitted")
    report = run_checks(repo, [_table()])
    assert len(report.stale) == 1 and first[:10] in report.stale[0]
    _write(repo, frame=_frame().assign(git_commit=_git(repo, "rev-parse", "HEAD")))
    assert run_checks(repo, [_table()]).ok


def test_recorded_code_fingerprint_detects_any_change_of_the_measured_files(tmp_path):
    repo = _repo(tmp_path)
    fp = code_fingerprint(["code"], repo)
    _write(repo, frame=_frame().assign(code_fingerprint=fp, code_paths="code"))
    _git(repo, "commit", "-qam", "results with fingerprint")
    assert run_checks(repo, [_table(code=())]).ok
    (repo / "code" / "model.py").write_text("X = 3\n", encoding="utf-8")  # even uncommitted
    report = run_checks(repo, [_table(code=())])
    assert len(report.stale) == 1 and fp in report.stale[0]
    (repo / "code" / "model.py").write_text("X = 1\n", encoding="utf-8")
    assert run_checks(repo, [_table(code=())]).ok


def test_fingerprint_of_named_definitions_ignores_the_rest_of_the_module(tmp_path):
    repo = _repo(tmp_path)
    mod = repo / "code" / "pipe.py"
    mod.write_text("def used(x):\n    return x + 1\n\n\ndef cli():\n    return 'help'\n", encoding="utf-8")
    _git(repo, "add", ".")
    spec = ["code/pipe.py::used"]
    before = code_fingerprint(spec, repo)
    mod.write_text(mod.read_text().replace("'help'", "'more help'"), encoding="utf-8")
    assert code_fingerprint(spec, repo) == before
    mod.write_text(mod.read_text().replace("x + 1", "x + 2"), encoding="utf-8")
    assert code_fingerprint(spec, repo) != before
    with pytest.raises(ClaimError, match="no top-level definition 'missing'"):
        code_fingerprint(["code/pipe.py::missing"], repo)
    # pathspec exclusion: a file left out does not count
    excl = ["code", ":(exclude)code/pipe.py"]
    fp = code_fingerprint(excl, repo)
    mod.write_text("changed = True\n", encoding="utf-8")
    assert code_fingerprint(excl, repo) == fp


def test_a_source_without_any_provenance_is_an_error(tmp_path):
    repo = _repo(tmp_path)
    report = run_checks(repo, [_table(code=())])
    assert not report.ok and "names no code paths" in report.errors[0]
    with pytest.raises(ClaimError, match="no git-tracked file"):
        code_fingerprint(["nowhere"], repo)


def test_a_reviewed_refactor_commit_does_not_make_a_source_stale(tmp_path):
    from claims import REFACTORS_FILE

    repo = _repo(tmp_path)
    (repo / "code" / "model.py").write_text("X = 1  # renamed import\n", encoding="utf-8")
    _git(repo, "commit", "-qam", "rename an import")
    sha = _git(repo, "rev-parse", "HEAD")
    assert not run_checks(repo, [_table()]).ok
    (repo / REFACTORS_FILE).parent.mkdir(parents=True, exist_ok=True)
    (repo / REFACTORS_FILE).write_text(f"{sha} results/acc.csv imports only\n", encoding="utf-8")
    assert run_checks(repo, [_table()]).ok
    # listed for another results file, or a later real change: stale again
    (repo / REFACTORS_FILE).write_text(f"{sha} results/other.csv imports only\n", encoding="utf-8")
    assert not run_checks(repo, [_table()]).ok
    (repo / REFACTORS_FILE).write_text(f"{sha} results/acc.csv imports only\n", encoding="utf-8")
    (repo / "code" / "model.py").write_text("X = 2\n", encoding="utf-8")
    _git(repo, "commit", "-qam", "change the model")
    report = run_checks(repo, [_table()])
    assert len(report.stale) == 1 and "change the model" in report.stale[0] and "rename" not in report.stale[0]


def test_the_reviewed_refactor_list_names_real_commits_with_reasons():
    from claims import ROOT, reviewed_refactors

    listed = reviewed_refactors(ROOT)
    for results, commits in listed.items():
        assert (ROOT / results).exists(), results
        for sha, reason in commits.items():
            assert len(reason.split()) >= 3, (sha, reason)
            subprocess.run(["git", "cat-file", "-e", f"{sha}^{{commit}}"], cwd=ROOT, check=True)
