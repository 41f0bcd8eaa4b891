#!/usr/bin/env python
"""Check the numbers that README.md and the results pages state against the files they come from.

    python benchmarks/claims.py --check      # exit 1 with a list of every mismatch or stale source
    python benchmarks/claims.py --list       # every checked number, its source value, and the gaps

A *claim* is a number in a Markdown document (``README.md``, ``benchmarks/results/**.md``) that a
results file (CSV or JSON under ``benchmarks/results/``) also holds. The check fails if

* the stated number differs from the source value by more than the stated number's own rounding
  (``0.56`` matches any source value in [0.555, 0.565]; ``5,175`` any in [5174.5, 5175.5]);
* the number, its table, row or column, or its source file cannot be found (a claim that cannot be
  checked is a failure, not a pass);
* the source is older than the code it measures. A results file that records
  ``code_fingerprint`` and ``code_paths`` columns (see :func:`code_fingerprint`; written by
  ``benchmarks/demo_models.py``) is stale when the fingerprint of those paths in the working tree
  differs. Otherwise the claim's :class:`Source` names the code paths, and the source is stale when
  a commit after the one it was produced at touches them: the produced-at commit is the file's
  recorded ``git_commit``/``git_revision`` column (or JSON key) if it has one, else the last commit
  that touched the results file.

It reads files and ``git`` only, offline, in about a second.

Adding a claim
--------------
Append to :data:`REGISTRY`. A whole Markdown table that copies a results table is one
:class:`TableClaim`: the document, ``anchor`` (regular expressions matched line by line, each after
the previous; the table is the first one from the last matching line on), the :class:`Source` file(s), and
``cell(frames, row_label, column_header)`` returning the numbers the cell must state, in order
(``[mean, sd]`` for ``0.559 ± 0.066``). :func:`wide_format_cells` builds ``cell`` for a CSV with
one row per table row; :func:`long_format_cells` for the usual long-format CSV (one row per model ×
subgroup × metric)::

    TableClaim(
        name="study: pearson_delta vs truth",
        doc="README.md",
        anchor=(r"^## The knowledge-bias study", r"^\\| model \\| all \\|"),
        sources=(Source("benchmarks/results/study/summary.csv", code=("priorgnn",)),),
        cell=long_format_cells(
            row_column="model", header=r"(?P<subgroup>\\w+)",
            fixed={"setting": "base", "reference": "truth", "metric": "pearson_delta"},
            values=("mean", "ci_lo", "ci_hi"),  # "0.737 [0.711, 0.760]"
            row_labels={"PriorGNN (GO + co-expression)": "priorgnn", "additive": "additive"}),
    )

A single number in prose is a :class:`ValueClaim`: a regular expression whose group ``value`` is
the stated number (it must match exactly one line of the document), and ``value(frames)``
computing it from the source. A cell that has no source must be named in ``unverified`` with the
reason; ``--list`` prints these gaps and the check does not count them as checked.

A benchmark that writes a results file should record what it measured: a ``git_commit`` column
(or JSON key) at least, better ``code_fingerprint`` and ``code_paths`` (:func:`code_fingerprint`
of the code it runs, computed at the start of the process; ``benchmarks/demo_models.py`` does
this), so that the check needs no ``code`` in the :class:`Source`. ``make test`` runs ``--check``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


class ClaimError(Exception):
    """A claim that cannot be checked (a missing file, table or column): fix the registry or the file."""


# --------------------------------------------------------------------------------------------------
# provenance


def git(root: Path, *args: str, stdin: str | None = None) -> str:
    """Output of ``git -C root ARGS`` (stripped); raises :class:`ClaimError` naming the command."""
    try:
        proc = subprocess.run(["git", "-C", str(root), *args], input=stdin, capture_output=True, text=True,
                              check=False)
    except FileNotFoundError:
        raise ClaimError("git is not installed; the claims check reads the history with git.") from None
    if proc.returncode != 0:
        cmd = " ".join(args)
        raise ClaimError(f"`git {cmd if len(cmd) < 80 else cmd[:77] + '...'}` failed in {root}: {proc.stderr.strip()}")
    return proc.stdout.strip()


def code_fingerprint(paths: Sequence[str], root: Path = ROOT) -> str:
    """A content hash of the code under ``paths`` as it is in the working tree.

    ``paths`` are git pathspecs (``":(exclude)path"`` leaves a file out), and ``"file.py::a,B"``
    stands for the source of the top-level functions or classes ``a`` and ``B`` of ``file.py`` only
    (for a module that also holds unrelated code, such as command-line handling). Plain paths
    contribute the blob ids (``git hash-object``) of their git-tracked files; any edit, addition or
    removal of such a file, or any edit of a named definition, changes the fingerprint. A results
    file records it when it is produced, and the check recomputes it.
    """
    plain = [p for p in paths if "::" not in p]
    parts: list[str] = []
    if plain:
        files = [f for f in git(root, "ls-files", "-z", "--", *plain).split("\0") if f and (root / f).is_file()]
        if not files:
            raise ClaimError(f"no git-tracked file under {', '.join(plain)}: fix the code paths of the claim.")
        blobs = git(root, "hash-object", "--stdin-paths", stdin="\n".join(files) + "\n").split()
        parts += [f"{f} {b}" for f, b in zip(files, blobs)]
    for spec in (p for p in paths if "::" in p):
        path, _, names = spec.partition("::")
        parts += [f"{path}::{name} {hashlib.sha1(_definition(root, path, name).encode()).hexdigest()}"
                  for name in names.split(",")]
    return hashlib.sha256("\n".join(sorted(parts)).encode()).hexdigest()[:16]


def _definition(root: Path, path: str, name: str) -> str:
    """The source text of the top-level function or class ``name`` in ``path``."""
    import ast

    p = root / path
    if not p.is_file():
        raise ClaimError(f"code path {path} does not exist: fix the code paths of the claim.")
    text = p.read_text(encoding="utf-8")
    for node in ast.parse(text).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            return "\n".join(ast.get_source_segment(text, d) or "" for d in node.decorator_list) + "\n" + \
                (ast.get_source_segment(text, node) or "")
    raise ClaimError(f"{path} has no top-level definition {name!r}: fix the code paths of the claim.")


def head_commit(root: Path = ROOT) -> str:
    """The checked-out commit (``git rev-parse HEAD``)."""
    return git(root, "rev-parse", "HEAD")


# --------------------------------------------------------------------------------------------------
# sources


@dataclass(frozen=True)
class Source:
    """A results file (CSV or JSON, relative to the project root) and the code it measures.

    ``code``: the paths whose later change makes the file stale, as git pathspecs (so
    ``":(exclude)path"`` leaves a file out); not needed when the file records ``code_fingerprint``
    and ``code_paths`` itself.
    """

    path: str
    code: tuple[str, ...] = ()

    def load(self, root: Path):
        p = root / self.path
        if not p.is_file():
            raise ClaimError(f"source {self.path} does not exist: regenerate it (see the document's command).")
        if p.suffix == ".json":
            return json.loads(p.read_text(encoding="utf-8"))
        import pandas as pd

        return pd.read_csv(p)

    def staleness(self, root: Path, frame) -> str | None:
        """Why the file is older than the code it measures, or ``None`` when it is not."""
        recorded = _recorded(frame, ("code_fingerprint", "code_paths"))
        if recorded["code_fingerprint"] and recorded["code_paths"]:
            if len(recorded["code_fingerprint"]) > 1 or len(recorded["code_paths"]) > 1:
                return (f"{self.path} mixes results from different code (fingerprints "
                        f"{', '.join(sorted(recorded['code_fingerprint']))}): regenerate it in one go")
            paths = next(iter(recorded["code_paths"])).split(";")
            was, now = next(iter(recorded["code_fingerprint"])), code_fingerprint(paths, root)
            if was != now:
                return (f"the code under {', '.join(paths)} changed since {self.path} was produced "
                        f"(code fingerprint {was} then, {now} now): rerun its benchmark")
            return None
        if not self.code:
            raise ClaimError(f"{self.path} records no code fingerprint and its Source names no code paths: "
                             "name the code it measures (Source(..., code=(...)))")
        commits = _recorded(frame, ("git_commit", "git_revision"))
        revs = sorted({r.removesuffix("-dirty") for r in commits["git_commit"] | commits["git_revision"]})
        how = "recorded in it"
        if not revs:
            last = git(root, "log", "-1", "--format=%H", "--", self.path)
            if not last:  # not committed yet: produced from the working tree now
                return None
            revs, how = [last], "the last commit that touched it"
        for rev in revs:  # every recorded commit must be current (i.e. the oldest one)
            try:
                git(root, "cat-file", "-e", f"{rev}^{{commit}}")
            except ClaimError:
                raise ClaimError(f"{self.path} records commit {rev}, which this repository does not have") from None
            reviewed = reviewed_refactors(root).get(self.path, {})
            later = [line for line in git(root, "log", "--format=%H %s", f"{rev}..HEAD", "--", *self.code).splitlines()
                     if line.split(" ", 1)[0] not in reviewed]
            later = [f"{line[:7]}{line[40:]}" for line in later]
            if later:
                return (f"{self.path} was produced at {rev[:10]} ({how}), but {len(later)} later commit(s) "
                        f"changed the code it measures ({', '.join(self.code)}), the first: {later[-1][:90]}; "
                        "rerun its benchmark")
        return None


#: Commits reviewed as refactors that cannot change a results file's numbers (renamed imports, moved
#: code), one per line: ``<full commit hash> <results file> <reason>``. A commit-based source is not
#: stale for a commit listed against it. Every line needs a reason; tests check that the commits exist.
REFACTORS_FILE = "benchmarks/claims_refactors.txt"


def reviewed_refactors(root: Path) -> dict[str, dict[str, str]]:
    """``{results file: {commit: reason}}`` from :data:`REFACTORS_FILE` (empty without the file)."""
    path = root / REFACTORS_FILE
    out: dict[str, dict[str, str]] = {}
    if not path.is_file():
        return out
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 2)
        if len(parts) < 3 or not re.fullmatch(r"[0-9a-f]{40}", parts[0]):
            raise ClaimError(f"{REFACTORS_FILE}:{n}: write '<full commit hash> <results file> <reason>'")
        out.setdefault(parts[1], {})[parts[0]] = parts[2]
    return out


def _recorded(frame, keys: Sequence[str]) -> dict[str, set[str]]:
    """The distinct non-empty values of ``keys`` in a CSV frame (columns) or JSON (keys at any depth)."""
    out: dict[str, set[str]] = {k: set() for k in keys}
    if hasattr(frame, "columns"):
        for k in keys:
            if k in frame.columns:
                out[k] = {str(v) for v in frame[k].dropna() if str(v)}
        return out

    def walk(obj):
        if isinstance(obj, Mapping):
            for k, v in obj.items():
                if k in out and isinstance(v, str) and v:
                    out[k].add(v)
                walk(v)
        elif isinstance(obj, list):
            for v in obj:
                walk(v)

    walk(frame)
    return out


# --------------------------------------------------------------------------------------------------
# stated numbers

#: a number as documents write it: optional sign (also the Unicode minus), thousands separators
NUMBER = re.compile(r"(?<![\w.])[-−+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![\w])")


@dataclass(frozen=True)
class Stated:
    text: str
    value: float
    decimals: int


def parse_numbers(text: str) -> list[Stated]:
    """The numbers in ``text``, in order, with their decimals (``"0.559 ± 0.066"`` → two numbers)."""
    out = []
    for m in NUMBER.finditer(text):
        s = m.group(0)
        plain = s.replace(",", "").replace("−", "-")
        out.append(Stated(s, float(plain), len(plain.split(".")[1]) if "." in plain else 0))
    return out


def matches(stated: Stated, source: float) -> bool:
    """Whether ``source`` rounds to the stated number: within half a unit of its last decimal."""
    if source is None or (isinstance(source, float) and math.isnan(source)):
        return False
    half = 0.5 * 10.0 ** -stated.decimals
    return abs(stated.value - float(source)) <= half * (1 + 1e-9) + 1e-12


# --------------------------------------------------------------------------------------------------
# claims


@dataclass
class Outcome:
    claim: str
    doc: str
    line: int
    where: str
    stated: str
    source: str
    expected: Any
    ok: bool
    note: str = ""

    def describe(self) -> str:
        exp = ", ".join(_fmt(v) for v in self.expected) if isinstance(self.expected, list) else _fmt(self.expected)
        return (f"{self.doc}:{self.line}: {self.where}: stated {self.stated!r}, {self.source} gives {exp}"
                + (f" ({self.note})" if self.note else ""))


def _fmt(v) -> str:
    if v is None:
        return "nothing"
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


class Missing(Exception):
    """The source has no value for this cell."""


#: ``cell(frames, row_label, column_header)`` → the numbers the cell states, or ``None``: not a claim
CellFn = Callable[[tuple, str, str], "list[float] | None"]


@dataclass(frozen=True)
class TableClaim:
    """Every cell of a Markdown table against its source(s); see the module docstring."""

    name: str
    doc: str
    anchor: tuple[str, ...]
    sources: tuple[Source, ...]
    cell: CellFn
    key_column: int = 0
    #: (row label or "*", column header or "*") → why the cell has no source
    unverified: Mapping[tuple[str, str], str] = field(default_factory=dict)

    def check(self, root: Path, frames: tuple) -> tuple[list[Outcome], list[str]]:
        lines = _read(root, self.doc)
        start = _find_anchor(lines, self.anchor, self.doc)
        rows = _table_after(lines, start, self.doc, self.anchor)
        (hline, header), body = rows[0], rows[2:]
        outcomes, gaps = [], []
        src = ", ".join(s.path for s in self.sources)
        for lineno, cells in body:
            if len(cells) != len(header):
                raise ClaimError(f"{self.doc}:{lineno}: row has {len(cells)} cells, header {len(header)}")
            label = cells[self.key_column]
            for col, (h, text) in enumerate(zip(header, cells)):
                if col == self.key_column:
                    continue
                where = f"table {self.name!r}, row {label!r}, column {h!r}"
                reason = self.unverified.get((label, h)) or self.unverified.get(("*", h)) \
                    or self.unverified.get((label, "*"))
                if reason:
                    gaps.append(f"{self.doc}:{lineno}: {where}: {text!r} not checked: {reason}")
                    continue
                try:
                    expected = self.cell(frames, label, h)
                except (Missing, KeyError, IndexError) as exc:
                    note = str(exc) if isinstance(exc, Missing) else f"no source value ({type(exc).__name__}: {exc})"
                    outcomes.append(Outcome(self.name, self.doc, lineno, where, text, src, None, False, note))
                    continue
                if expected is None:
                    continue
                stated = parse_numbers(text)
                if not stated and not expected:  # a placeholder ("–") where the source has no value
                    continue
                if len(stated) != len(expected):
                    outcomes.append(Outcome(self.name, self.doc, lineno, where, text, src, list(expected), False,
                                            f"{len(stated)} number(s) stated, {len(expected)} expected"))
                    continue
                ok = all(matches(s, e) for s, e in zip(stated, expected))
                outcomes.append(Outcome(self.name, self.doc, lineno, where, text, src, list(expected), ok))
        if not outcomes:
            raise ClaimError(f"{self.doc}: table {self.name!r} (line {hline}) has no checked cell")
        return outcomes, gaps


@dataclass(frozen=True)
class ValueClaim:
    """One number in prose: ``pattern``'s group ``value`` against ``value(frames)``."""

    name: str
    doc: str
    pattern: str
    sources: tuple[Source, ...]
    value: Callable[[tuple], float]

    def check(self, root: Path, frames: tuple) -> tuple[list[Outcome], list[str]]:
        lines = _read(root, self.doc)
        rx = re.compile(self.pattern)
        hits = [(i + 1, m) for i, line in enumerate(lines) for m in [rx.search(line)] if m]
        if len(hits) != 1:
            raise ClaimError(f"{self.doc}: claim {self.name!r}: pattern {self.pattern!r} matches "
                             f"{len(hits)} lines (expected exactly one): update the pattern or the document")
        lineno, m = hits[0]
        stated = parse_numbers(m.group("value"))
        if len(stated) != 1:
            raise ClaimError(f"{self.doc}:{lineno}: claim {self.name!r}: group 'value' holds {m.group('value')!r}, "
                             "not one number")
        src = ", ".join(s.path for s in self.sources)
        try:
            expected = float(self.value(frames))
        except Missing as exc:
            return [Outcome(self.name, self.doc, lineno, self.name, stated[0].text, src, None, False, str(exc))], []
        return [Outcome(self.name, self.doc, lineno, self.name, stated[0].text, src, expected,
                        matches(stated[0], expected))], []


def _read(root: Path, doc: str) -> list[str]:
    p = root / doc
    if not p.is_file():
        raise ClaimError(f"document {doc} does not exist")
    return p.read_text(encoding="utf-8").splitlines()


def _find_anchor(lines: list[str], anchor: Sequence[str], doc: str) -> int:
    """The index of the line that matches the last pattern, each pattern searched after the previous."""
    pos = -1
    for pattern in anchor:
        rx = re.compile(pattern)
        for i in range(pos + 1, len(lines)):
            if rx.search(lines[i]):
                pos = i
                break
        else:
            raise ClaimError(f"{doc}: no line matching {pattern!r} (after line {pos + 1}): the document changed; "
                             "update the claim's anchor")
    return pos


def _split_row(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _table_after(lines: list[str], start: int, doc: str, anchor) -> list[tuple[int, list[str]]]:
    i = start
    while i < len(lines) and not lines[i].lstrip().startswith("|"):
        i += 1
    rows = []
    while i < len(lines) and lines[i].lstrip().startswith("|"):
        rows.append((i + 1, _split_row(lines[i])))
        i += 1
    if len(rows) < 3 or not set("".join(rows[1][1])) <= set("-: "):
        raise ClaimError(f"{doc}: no Markdown table after the anchor {list(anchor)}")
    return rows


# --------------------------------------------------------------------------------------------------
# cell functions for common source shapes


def long_format_cells(*, row_column: str, header: str, fixed: Mapping[str, Any] | None = None,
                      values: Sequence[str] = ("mean", "sd"), source: int = 0,
                      row_labels: Mapping[str, str] | None = None,
                      extra: Mapping[str, CellFn] | None = None) -> CellFn:
    """``cell`` for a long-format CSV: the row label selects ``row_column``, the column header is
    parsed by the regex ``header`` whose named groups select further columns, ``fixed`` adds
    constant filters; the cell states ``values`` of the one matching row. ``row_labels`` maps a
    table label to the CSV's value; ``extra`` handles other headers (e.g. ``seeds``)."""
    rx = re.compile(header)

    def cell(frames, label, head):
        if extra and head in extra:
            return extra[head](frames, label, head)
        m = rx.fullmatch(head)
        if m is None:
            raise Missing(f"column header {head!r} matches neither {header!r} nor an extra column")
        df = frames[source]
        key = (row_labels or {}).get(label, label)
        sel = df[row_column].astype(str) == key
        for col, v in {**(fixed or {}), **m.groupdict()}.items():
            sel &= df[col].astype(str) == str(v)
        hit = df[sel]
        if len(hit) != 1:
            raise Missing(f"{len(hit)} source rows for {row_column}={key!r}, "
                          f"{ {**(fixed or {}), **m.groupdict()} }")
        return [float(hit.iloc[0][v]) for v in values]

    return cell


def wide_format_cells(*, row_column: str, columns: Mapping[str, Sequence[str]], source: int = 0,
                      fixed: Mapping[str, Any] | None = None) -> CellFn:
    """``cell`` for a table-shaped CSV: one source row per table row (``row_column`` = the row label,
    plus the ``fixed`` filters), and ``columns`` maps each table header to the CSV column(s) whose
    values the cell states, in order (``{"pearson_delta": ("mean", "sd")}``). Headers not in
    ``columns`` are not claims."""

    def cell(frames, label, head):
        if head not in columns:
            return None
        df = frames[source]
        sel = df[row_column].astype(str) == label
        for col, v in (fixed or {}).items():
            sel &= df[col].astype(str) == str(v)
        hit = df[sel]
        if len(hit) != 1:
            raise Missing(f"{len(hit)} source rows for {row_column}={label!r}")
        return [float(hit.iloc[0][c]) for c in columns[head]]

    return cell


def _demo_fits(frames, label, head):
    f = frames[1]
    f = f[f["model"] == label]
    if f.empty:
        raise Missing(f"no fits of {label!r} in demo_models_fits.csv")
    if head == "fit s":
        return [float(f["fit_s"].mean())]
    if head == "epochs":
        ep = f["epochs"].dropna()
        return [] if ep.empty else [float(ep.mean())]
    if head == "capped fits":
        capped = f["hit_cap"].dropna()
        return [] if capped.empty else [float(capped.astype(bool).sum()), float(len(capped))]
    if head == "seeds":
        return [float(f["seed"].nunique())]
    raise Missing(f"no rule for column {head!r}")


def _calibration(frames, preset: str, seed: int):
    df = frames[0]
    df = df[(df["preset"] == preset) & (df["seed"] == seed)]
    if df.empty:
        raise Missing(f"no doubles of preset {preset!r}, seed {seed} in simulator_calibration.csv")
    return df, df[df["included"].astype(bool)]


def _calibration_readme(frames, label, head):
    try:
        df, inc = _calibration(frames, "norman", int(label))
    except ValueError:
        raise Missing(f"row {label!r} is not a seed") from None
    key = head.split(" (")[0]
    if key in ("corr_sum", "corr_fit", "magnitude"):
        return [float(inc[key].median())]
    if key == "non-additive in truth":
        return [float((inc["truth_corr_sum"] < 0.97).mean())]
    raise Missing(f"no rule for column {head!r}")


def _calibration_page(preset: str) -> CellFn:
    def cell(frames, label, head):
        if head != "value":
            return None
        df, inc = _calibration(frames, preset, 0)
        m = re.fullmatch(r"median (corr_sum|corr_fit|magnitude|corr_fit_ts) \((observed|noise-free truth|"
                         r"observed, Norman's z-scale|observed, Theil-Sen prediction)\)", label)
        if m:
            prefix = {"noise-free truth": "truth_", "observed, Norman's z-scale": "z_"}.get(m.group(2), "")
            return [float(inc[prefix + m.group(1)].median())]
        if label == "doubles with truth corr_sum < 0.97":
            return [float((inc["truth_corr_sum"] < 0.97).mean())]
        if label == "median DE genes of a double":
            return [float(df["n_de_double"].median())]
        if label == "doubles scored / simulated":
            return [float(len(inc)), float(len(df))]
        raise Missing(f"no rule for row {label!r}")

    return cell


_DEMO = (Source("benchmarks/results/demo_models.csv"), Source("benchmarks/results/demo_models_fits.csv"))
_DEMO_CELLS = long_format_cells(row_column="model", header=r"(?P<subgroup>unseen_single|combo_seen\d) (?P<metric>\w+)",
                                extra={h: _demo_fits for h in ("seeds", "fit s", "epochs", "capped fits")})


def _demo_tables(doc: str, section: str) -> list[TableClaim]:
    return [TableClaim(name=f"{doc}: demo models, {which}", doc=doc, anchor=(section, intro), sources=_DEMO,
                       cell=_DEMO_CELLS)
            for which, intro in (("unseen genes", r"^Unseen genes, scored off the perturbed genes"),
                                 ("seen genes and fits", r"^Doubles of seen genes, and the fits"))]


def _demo_value(model: str, subgroup: str, metric: str, stat: str = "mean") -> Callable[[tuple], float]:
    def value(frames):
        df = frames[0]
        hit = df[(df["model"] == model) & (df["subgroup"] == subgroup) & (df["metric"] == metric)]
        if len(hit) != 1:
            raise Missing(f"{len(hit)} rows for {model}, {subgroup}, {metric} in demo_models.csv")
        return float(hit.iloc[0][stat])

    return value


def _demo_fit_stat(models: Sequence[str], stat: Callable) -> Callable[[tuple], float]:
    def value(frames):
        f = frames[1][frames[1]["model"].isin(models)]
        if f.empty:
            raise Missing(f"no fits of {', '.join(models)} in demo_models_fits.csv")
        return float(stat(f))

    return value


def _demo_max(models: Sequence[str], subgroup: str, metric: str) -> Callable[[tuple], float]:
    def value(frames):
        return max(_demo_value(m, subgroup, metric)(frames) for m in models)

    return value


_BASELINES = ("no_change", "mean", "additive", "linear", "linear_go", "go_knn")
_TRANSFORMERS = ("transformer_pretrained", "transformer_no_pretrain")
_EXCL, _US, _C0 = "pearson_delta_excl_target", "unseen_single", "combo_seen0"
#: the numbers of the reading below the demo-models tables (the same paragraph in README and the page)
_DEMO_READING: list[tuple[str, str, Callable[[tuple], float]]] = [
    ("oracle, unseen_single excl", r"the `network_knn` oracle scores (?P<value>[\d.]+) on unseen",
     _demo_value("network_knn", _US, _EXCL)),
    ("linear, unseen_single excl", r"`linear` scores (?P<value>[\d.]+),", _demo_value("linear", _US, _EXCL)),
    ("additive, unseen_single excl", r"`additive` (?P<value>[\d.]+)\)\. Trained PriorGNN",
     _demo_value("additive", _US, _EXCL)),
    ("priorgnn, unseen_single excl", r"Trained PriorGNN scores (?P<value>[\d.]+) and",
     _demo_value("priorgnn", _US, _EXCL)),
    ("untrained, unseen_single excl", r"untrained backbone (?P<value>[\d.]+) \(training",
     _demo_value("priorgnn_untrained", _US, _EXCL)),
    ("transformer pretrained, unseen_single excl", r"against (?P<value>[\d.]+) and [\d.]+ for the transformer with",
     _demo_value("transformer_pretrained", _US, _EXCL)),
    ("transformer no pretrain, unseen_single excl", r"against [\d.]+ and (?P<value>[\d.]+) for the transformer with",
     _demo_value("transformer_no_pretrain", _US, _EXCL)),
    ("priorgnn, combo_seen0 excl", r"trained PriorGNN \((?P<value>[\d.]+)\) is level", _demo_value("priorgnn", _C0, _EXCL)),
    ("untrained, combo_seen0 excl", r"untrained backbone \((?P<value>[\d.]+)\) and",
     _demo_value("priorgnn_untrained", _C0, _EXCL)),
    ("additive, combo_seen0 excl", r"above `additive` \((?P<value>[\d.]+)\)", _demo_value("additive", _C0, _EXCL)),
    *[(f"{m}, unseen_single target_sign_match", r"`target_sign_match` (?P<value>[\d.]+)\)",
       _demo_value(m, _US, "target_sign_match")) for m in ("priorgnn", "priorgnn_untrained", *_TRANSFORMERS)],
    ("best baseline, unseen_single target_sign_match", r"at most (?P<value>[\d.]+) for a baseline",
     _demo_max(_BASELINES, _US, "target_sign_match")),
    ("linear, unseen_single target_sign_match", r"at most (?P<value>[\d.]+) for a baseline \(`linear`\)",
     _demo_value("linear", _US, "target_sign_match")),
    ("priorgnn, combo_seen1", r"`combo_seen1` pearson_delta (?P<value>[\d.]+) vs [\d.]+, `combo_seen2`",
     _demo_value("priorgnn", "combo_seen1", "pearson_delta")),
    ("transformer no pretrain, combo_seen1", r"`combo_seen1` pearson_delta [\d.]+ vs (?P<value>[\d.]+), `combo_seen2`",
     _demo_value("transformer_no_pretrain", "combo_seen1", "pearson_delta")),
    ("priorgnn, combo_seen2", r"`combo_seen2` (?P<value>[\d.]+) vs [\d.]+\);",
     _demo_value("priorgnn", "combo_seen2", "pearson_delta")),
    ("transformer no pretrain, combo_seen2", r"`combo_seen2` [\d.]+ vs (?P<value>[\d.]+)\);",
     _demo_value("transformer_no_pretrain", "combo_seen2", "pearson_delta")),
    ("untrained, combo_seen1", r"backbone scores (?P<value>[\d.]+) on `combo_seen1`",
     _demo_value("priorgnn_untrained", "combo_seen1", "pearson_delta")),
    *[(f"{m}, combo_seen2", r"PriorGNN and its backbone score (?P<value>[\d.]+) ",
       _demo_value(m, "combo_seen2", "pearson_delta")) for m in ("priorgnn", "priorgnn_untrained")],
    ("scaled_additive, combo_seen2", r"`scaled_additive` (?P<value>[\d.]+) and$",
     _demo_value("scaled_additive", "combo_seen2", "pearson_delta")),
    ("additive, combo_seen2", r"^`additive` (?P<value>[\d.]+)\. Every", _demo_value("additive", "combo_seen2", "pearson_delta")),
    ("transformer fits at the cap", r"\((?P<value>\d+) of \d+ fits at",
     _demo_fit_stat(_TRANSFORMERS, lambda f: f["hit_cap"].astype(bool).sum())),
    ("transformer fits", r"\(\d+ of (?P<value>\d+) fits at", _demo_fit_stat(_TRANSFORMERS, len)),
    ("transformer epoch cap", r"(?P<value>[\d,]+)-epoch cap", _demo_fit_stat(_TRANSFORMERS, lambda f: f["max_epochs"].max())),
]


def _demo_prose(doc: str) -> list[ValueClaim]:
    return [ValueClaim(name=f"{doc}: demo reading, {label}", doc=doc, pattern=pattern, sources=_DEMO, value=fn)
            for label, pattern, fn in _DEMO_READING]


# the simulator library and the scoring script; the simulator's command-line wrapper
# (priorgnn/simulate/__main__.py), which the script runs, only parses options and writes the folder
_CALIBRATION = Source("benchmarks/results/simulator_calibration.csv",
                      code=("benchmarks/calibrate_simulator.py", "priorgnn/simulate",
                            ":(exclude)priorgnn/simulate/__main__.py"))
_CALIBRATION_NOT_IN_CSV = ("the per-double CSV does not hold it (written from the simulation only into the "
                           "Markdown page)")

#: the streamed runs of benchmarks/scale_limits.py (no recorded commit: the commit that wrote the file)
_SCALE = Source("benchmarks/results/scale_limits.json",
                code=("priorgnn/data/stream.py", "priorgnn/data/dataset.py", "benchmarks/scale_limits.py"))


def _scale_step(job: str, n_cells: int, field_: str, step_prefix: str | None = None):
    """A value of one streamed job's step (or the job's extra record) in ``scale_limits.json``."""

    def fn(frames):
        (records,) = frames
        hits = [r for r in records if r["job"] == job and r["n_cells"] == n_cells and r.get("ok")]
        if not hits:
            raise Missing(f"no successful {job} job at {n_cells:,} cells in scale_limits.json")
        for st in hits[-1]["steps"]:
            if field_ in st and (step_prefix is None or st.get("step", "").startswith(step_prefix)):
                return st[field_]
        raise Missing(f"the {job} job at {n_cells:,} cells records no {field_}")

    return fn


def _scale_prose(doc: str) -> list[ValueClaim]:
    big = 2_000_000
    specs = [
        ("streamed summaries, peak GiB", r"9,501 conditions: (?P<value>[\d.]+) GiB peak",
         _scale_step("stream", big, "peak_gb", "streamed")),
        ("streamed summaries, CPU s", r"GiB peak, (?P<value>[\d,]+) CPU-seconds",
         _scale_step("stream", big, "cpu_s", "streamed")),
        ("--summaries-only pass, peak GiB", r"peaks at (?P<value>[\d.]+) GiB \(the moment arrays",
         _scale_step("summaries_only", big, "peak_gb", "streamed")),
        ("--summaries-only moment arrays, GiB", r"the moment arrays are (?P<value>[\d.]+) GiB of it",
         _scale_step("summaries_only", big, "moments_gb")),
        ("--summaries-only pass, CPU s", r"and takes (?P<value>[\d,]+) CPU-seconds",
         _scale_step("summaries_only", big, "cpu_s", "streamed")),
    ]
    return [ValueClaim(name=f"{doc}: scale limits, {label}", doc=doc, pattern=pattern, sources=(_SCALE,), value=fn)
            for label, pattern, fn in specs]


#: benchmarks/vs_gears.py's summaries (they record their commit and code fingerprint)
_VS_NORMAN = Source("benchmarks/results/vs_gears_summary.json")
_VS_DEMO = Source("benchmarks/results/vs_gears_demo/vs_gears_summary.json")
_VS_DEMO_CSV = Source("benchmarks/results/vs_gears_demo/vs_gears.csv")
_VS_NORMAN_CSV = Source("benchmarks/results/vs_gears.csv")

#: README speed/memory table: row label → the summary JSON's key path
_VS_ROWS = {
    "time per optimiser step": ("per_step", "ratio"),
    "time to a trained model, end to end": ("end_to_end", "ratio"),
    "seconds end to end, PriorGNN": ("end_to_end", "priorgnn_s"),
    "seconds end to end, cell-gears": ("end_to_end", "gears_s"),
    "peak memory, PriorGNN with `--summaries-only`": ("memory", "summaries_only", "ratio"),
    "peak memory, PriorGNN with cells loaded": ("memory", "cells_loaded", "ratio"),
}


def _vs_speed_cell(frames, label, head):
    keys = next((v for k, v in _VS_ROWS.items() if label.startswith(k)), None)
    if keys is None:
        raise Missing(f"no summary key for the row {label!r}")
    obj = frames[0] if head.startswith("norman") else frames[1] if head.startswith("demo") else None
    if obj is None:
        raise Missing(f"column {head!r} names neither norman nor demo")
    for k in keys:
        if k not in obj:
            raise Missing(f"the summary has no {'.'.join(keys)}")
        obj = obj[k]
    return [float(obj)]


#: README accuracy table: row label → model in vs_gears.csv
_VS_MODELS = {"PriorGNN, default schedule (early stopping)": "priorgnn_default", "PriorGNN, 20 epochs": "priorgnn",
              "PriorGNN untrained (its built-in backbone only)": "priorgnn_untrained",
              "cell-gears, 20 epochs": "gears", "additive": "additive", "no_change": "no_change"}


def _vs_accuracy(model: str, subgroup: str, metric: str, source: int = 0):
    def fn(frames):
        df = frames[source]
        hit = df[(df["kind"] == "accuracy") & (df["model"] == model) & (df["subgroup"] == subgroup)
                 & (df["metric"] == metric)]
        if len(hit) != 1:
            raise Missing(f"{len(hit)} accuracy rows for {model}/{subgroup}/{metric}")
        return float(hit.iloc[0]["mean"])

    return fn


def _vs_accuracy_cell(frames, label, head):
    sub, metric = head.split(" ", 1)
    if label not in _VS_MODELS:
        raise Missing(f"row {label!r} names no model of vs_gears.csv")
    return [_vs_accuracy(_VS_MODELS[label], sub, metric)(frames)]


def _vs_gears_claims() -> list[TableClaim | ValueClaim]:
    return [
        TableClaim(name="README: vs cell-gears, speed and memory", doc="README.md",
                   anchor=(r"^### Side by side with the reference GEARS", r"^\| cell-gears ÷ PriorGNN \|"),
                   sources=(_VS_NORMAN, _VS_DEMO), cell=_vs_speed_cell),
        TableClaim(name="README: vs cell-gears, accuracy on demo", doc="README.md",
                   anchor=(r"^### Side by side with the reference GEARS", r"^\| model \| unseen_single"),
                   sources=(_VS_DEMO_CSV,), cell=_vs_accuracy_cell),
        ValueClaim(name="README: vs cell-gears, norman untrained excl_target", doc="README.md",
                   pattern=r"`pearson_delta_excl_target` is (?P<value>[\d.]+) untrained",
                   sources=(_VS_NORMAN_CSV,), value=_vs_accuracy("priorgnn_untrained", "all", "pearson_delta_excl_target")),
        ValueClaim(name="README: vs cell-gears, norman trained excl_target", doc="README.md",
                   pattern=r"untrained and (?P<value>[\d.]+) trained with the default",
                   sources=(_VS_NORMAN_CSV,), value=_vs_accuracy("priorgnn_default", "all", "pearson_delta_excl_target")),
    ]


#: the knowledge-bias study's full grid (no recorded commit: the commit that wrote the file); its numbers
#: depend on the library's numerical code, not on the report renderer
_STUDY = Source("benchmarks/results/study/summary.csv",
                code=("priorgnn", ":(exclude)priorgnn/report", "knowledge"))


def _interaction_target_mean(frames, label, head):
    """A mean of ``benchmarks/results/interaction_targets.csv`` as its page states it: over the test
    doubles of each data seed, then over the seeds."""
    m = re.fullmatch(r"(?P<setting>\w+) (?P<subgroup>combo_seen\d) (?P<metric>\w+)", head)
    if m is None:
        raise Missing(f"column header {head!r} is not 'SETTING SUBGROUP METRIC'")
    df = frames[0]
    hit = df[(df["setting"] == m["setting"]) & (df["model"] == label) & (df["subgroup"] == m["subgroup"])]
    if hit.empty:
        raise Missing(f"no doubles for {label!r}, {m.groupdict()}")
    return [float(hit.groupby("data_seed")[m["metric"]].mean().mean())]


def _interaction_program_mean(frames, label, head):
    """A mean of ``benchmarks/results/interaction_programs.csv`` as its page states it: the per-seed means
    over the test doubles, averaged over the seeds. Row labels are ``MODEL`` (a baseline) or
    ``MODEL, k=K`` (a program model with K coordinates); headers ``SETTING METRIC``."""
    m = re.fullmatch(r"(?P<setting>\w+) (?P<metric>\w+)", head)
    r = re.fullmatch(r"(?P<model>\w+)(?:, k=(?P<k>\d+))?", label)
    if m is None or r is None:
        raise Missing(f"row {label!r} or column {head!r} is not 'MODEL[, k=K]' and 'SETTING METRIC'")
    df = frames[0]
    hit = df[(df["setting"] == m["setting"]) & (df["model"] == r["model"])
             & (df["programs"] == int(r["k"] or 0))]
    if hit.empty:
        raise Missing(f"no rows for {label!r}, {m.groupdict()}")
    return [float(hit[m["metric"]].mean())]


def _pair_shrinkage_cell(frames, label, head):
    """A test-part value of ``benchmarks/results/pair_shrinkage_summary.csv``: row ``MODEL``, header
    ``SETTING COLUMN`` (e.g. ``norman mse_top20_de``)."""
    m = re.fullmatch(r"(?P<setting>[\w.]+) (?P<column>\w+)", head)
    if m is None:
        raise Missing(f"column header {head!r} is not 'SETTING COLUMN'")
    df = frames[0]
    hit = df[(df["setting"] == m["setting"]) & (df["model"] == label) & (df["part"] == "test")]
    if len(hit) != 1:
        raise Missing(f"{len(hit)} source rows for {label!r}, {m.groupdict()}")
    return [float(hit.iloc[0][m["column"]])]


def _model_source(path: str, script: str) -> Source:
    """A results file of ``script`` that fits and scores the library's models: the library (without
    its report and study layers) and ``knowledge`` are the code it measures."""
    return Source(path, code=(script, "priorgnn", ":(exclude)priorgnn/report", ":(exclude)priorgnn/study", "knowledge"))


def _interaction_power_source(name: str) -> Source:
    """A results file of ``benchmarks/interaction_power.py``, which runs ``interaction_targets.py``'s
    fits and test: both scripts and the library are the code it measures."""
    return Source(f"benchmarks/results/{name}",
                  code=("benchmarks/interaction_power.py", "benchmarks/interaction_targets.py", "priorgnn",
                        ":(exclude)priorgnn/report", ":(exclude)priorgnn/study", "knowledge"))


#: the README's two tables of means of benchmarks/pair_ranking.py (demo and norman presets) share their columns
_RANKING_CELLS = wide_format_cells(row_column="model", columns={
    "precision@10, Norman magnitude": ("p@k_magnitude_deviation",),
    "precision@10, non-additive size": ("p@k_relative_nonadditive",),
    "rate of interacting pairs": ("rate",),
    "non-additive corr (held-out doubles)": ("nonadditive_corr_mean",),
    "GI label accuracy": ("gi_label_accuracy",)})


def _ranking_claim(name: str, results: str, *anchor: str, cell: CellFn = _RANKING_CELLS) -> TableClaim:
    """A README table of ``benchmarks/pair_ranking.py`` (results file ``results``), found at ``anchor``
    under the section on ranking unseen combinations."""
    return TableClaim(name=name, doc="README.md",
                      anchor=(r"^### Predicting and ranking unseen combinations", *anchor),
                      sources=(_model_source(results, "benchmarks/pair_ranking.py"),), cell=cell)


REGISTRY: list[TableClaim | ValueClaim] = [
    TableClaim(
        name="README: simulator calibration",
        doc="README.md",
        anchor=(r"^### Simulator calibration", r"^\| seed \| corr_sum"),
        sources=(_CALIBRATION,),
        cell=_calibration_readme,
        unverified={("*", "DE genes per single (199-796)"): _CALIBRATION_NOT_IN_CSV,
                    ("1", "*"): "seeds 1 and 2 ran with --no-write; no results file holds them",
                    ("2", "*"): "seeds 1 and 2 ran with --no-write; no results file holds them"},
    ),
    *[
        TableClaim(
            name=f"simulator_calibration.md: preset {preset}",
            doc="benchmarks/results/simulator_calibration.md",
            anchor=(rf"^<!-- preset:{preset} -->", r"^\| metric \| value \|"),
            sources=(_CALIBRATION,),
            cell=_calibration_page(preset),
            unverified={(row, "value"): _CALIBRATION_NOT_IN_CSV
                        for row in ("median DE genes of a single", "genes used for the fits", "zeros in X",
                                    "UMIs per cell (mean / median)", "cells (control / total)",
                                    "simulation wall time", "simulation peak RSS",
                                    "summaries (pseudobulk + DE) time")},
        )
        for preset in ("norman", "demo")
    ],
    *_demo_tables("README.md", r"^### Models on the demo simulation"),
    *_demo_prose("README.md"),
    *_demo_tables("benchmarks/results/demo_models.md", r"^# Models on the `demo` simulation"),
    *_demo_prose("benchmarks/results/demo_models.md"),
    *_scale_prose("README.md"),
    *_vs_gears_claims(),
    TableClaim(
        name="README: what priors can carry",
        doc="README.md",
        anchor=(r"^### What priors can carry", r"^\| data \| mean of others"),
        sources=(Source("benchmarks/results/knowledge_calibration_summary.csv",
                        code=("benchmarks/calibrate_knowledge.py", "priorgnn/simulate", "priorgnn/models/neighbours.py",
                              "priorgnn/models/linear.py", "priorgnn/metrics/core.py", "knowledge",
                              "priorgnn/data")),),
        cell=wide_format_cells(row_column="data", columns={
            "mean of others, Pearson Δ": ("mean_of_others_median",),
            "genes with a co-expression edge": ("coex_genes_with_edge",),
            "mean": ("mean",), "go_knn": ("go_knn",), "network_knn oracle": ("network_knn",)}),
        unverified={("Norman et al. 2019 K562 (PerturBench subset)", col): "scored against a simulation's truth: "
                    "no value for real cells" for col in ("mean", "go_knn", "network_knn oracle")},
    ),
    TableClaim(
        name="README: real cells",
        doc="README.md",
        anchor=(r"^### On real cells", r"^\| model \| double_lodo"),
        sources=(_model_source("benchmarks/results/real_norman_subset.csv", "benchmarks/real_norman_subset.py"),),
        cell=long_format_cells(row_column="model", header=r"(?P<family>\w+) (?P<subgroup>\w+) (?P<metric>\w+)",
                               fixed={"reference": "observed"}, values=("mean", "ci_lo", "ci_hi")),
    ),
    _ranking_claim("README: ranking unseen pairs", "benchmarks/results/pair_ranking.csv",
                   r"^\| model \| precision@10"),
    _ranking_claim("README: ranking unseen pairs, norman preset", "benchmarks/results/pair_ranking_norman/pair_ranking.csv",
                   r"^On the calibrated `norman` preset itself", r"^\| model \| precision@10"),
    _ranking_claim("README: ranking unseen pairs, norman preset, per data seed",
                   "benchmarks/results/pair_ranking_norman/pair_ranking_seeds.csv",
                   r"^On the calibrated `norman` preset itself", r"^\| model \| seed 0",
                   cell=long_format_cells(row_column="model", header=r"seed (?P<data_seed>\d+)",
                                          values=("p@k_relative_nonadditive", "rate"))),
    TableClaim(
        name="README: learning curve of the backbones of doubles (norman)",
        doc="README.md",
        anchor=(r"^### Interaction targets on the `norman` preset", r"^\| model \| nonadditive_corr, 15 doubles"),
        sources=(_model_source("benchmarks/results/interaction_learning_curve_summary.csv",
                               "benchmarks/interaction_learning_curve.py"),),
        cell=long_format_cells(row_column="model", header=r"(?P<metric>\w+), (?P<n_train>\d+) doubles",
                               fixed={"setting": "norman"}, values=("value",)),
    ),
    TableClaim(
        name="README: where the non-additive part comes from (programs)",
        doc="README.md",
        anchor=(r"^### Interaction targets on the `norman` preset", r"^\| model \| norman nonadditive_corr \|"),
        sources=(_model_source("benchmarks/results/interaction_programs.csv", "benchmarks/interaction_programs.py"),),
        cell=_interaction_program_mean,
    ),
    TableClaim(
        name="README: the correction on validation simulations, as measured and on noise-free doubles",
        doc="README.md",
        anchor=(r"^### Interaction targets on the `norman` preset",
                r"^\| model \| norman combo_seen2 mse_top20_de \| norman combo_seen2 nonadditive_corr"),
        sources=(_interaction_power_source("interaction_power.csv"),),
        cell=_interaction_target_mean,
    ),
    TableClaim(
        name="README: how often three seeds show T2 (validation simulations)",
        doc="README.md",
        anchor=(r"^### Interaction targets on the `norman` preset", r"^\| setting \| subsets of three seeds"),
        sources=(_interaction_power_source("interaction_power_summary.csv"),),
        cell=wide_format_cells(row_column="setting",
                               columns={"subsets of three seeds": ("subsets",), "T2 met": ("t2_met",),
                                        "combo_seen2 vs additive shown": ("seen2_additive_shown",)}),
    ),
    TableClaim(
        name="README: shrinking the backbone of doubles toward additive (validation simulations)",
        doc="README.md",
        anchor=(r"^### Interaction targets on the `norman` preset",
                r"^\| model \| norman mse_top20_de \| norman worst_seed_gap"),
        sources=(_model_source("benchmarks/results/pair_shrinkage_summary.csv", "benchmarks/pair_shrinkage.py"),),
        cell=_pair_shrinkage_cell,
    ),
    TableClaim(
        name="README: interaction targets on the norman preset",
        doc="README.md",
        anchor=(r"^### Interaction targets on the `norman` preset", r"^\| model \| norman combo_seen2"),
        sources=(_model_source("benchmarks/results/interaction_targets.csv", "benchmarks/interaction_targets.py"),),
        cell=_interaction_target_mean,
    ),
    TableClaim(
        name="README: study, negative control vs truth",
        doc="README.md",
        anchor=(r"^## The knowledge-bias study", r"^\| model \(negative control\) \| unseen_single"),
        sources=(_STUDY,),
        cell=long_format_cells(row_column="model", header=r"(?P<subgroup>\w+) (?P<metric>\w+)",
                               fixed={"setting": "negative_control", "reference": "truth"},
                               values=("mean", "ci_lo", "ci_hi")),
    ),
    TableClaim(
        name="README: study, base setting vs truth",
        doc="README.md",
        anchor=(r"^## The knowledge-bias study", r"^\| model \| unseen_single"),
        sources=(_STUDY,),
        cell=long_format_cells(row_column="model", header=r"(?P<subgroup>\w+) (?P<metric>\w+)",
                               fixed={"setting": "base", "reference": "truth"}, values=("mean", "ci_lo", "ci_hi")),
    ),
]


# --------------------------------------------------------------------------------------------------
# running


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    gaps: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]

    @property
    def ok(self) -> bool:
        return not (self.failures or self.stale or self.errors)

    def render(self, verbose: bool = False) -> str:
        out = []
        if verbose:
            out += [("ok    " if o.ok else "WRONG ") + o.describe() for o in self.outcomes]
            out += [f"unverified {g}" for g in self.gaps]
        for o in self.failures:
            out.append(f"MISMATCH {o.describe()}")
        out += [f"STALE {s}" for s in self.stale]
        out += [f"ERROR {e}" for e in self.errors]
        out.append(f"{len(self.outcomes) - len(self.failures)}/{len(self.outcomes)} stated numbers match their "
                   f"sources; {len(self.stale)} stale source(s); {len(self.errors)} claim(s) not checkable; "
                   f"{len(self.gaps)} cell(s) without a source")
        return "\n".join(out)


def run_checks(root: Path = ROOT, registry: Sequence[TableClaim | ValueClaim] | None = None, *,
               staleness: bool = True) -> Report:
    """Check every claim of ``registry`` (default :data:`REGISTRY`) in the tree at ``root``."""
    report = Report()
    cache: dict[str, Any] = {}
    checked: set[str] = set()
    for claim in REGISTRY if registry is None else registry:
        try:
            frames = []
            for s in claim.sources:
                if s.path not in cache:
                    cache[s.path] = s.load(root)
                frames.append(cache[s.path])
            outcomes, gaps = claim.check(root, tuple(frames))
        except ClaimError as exc:
            report.errors.append(f"{claim.name}: {exc}")
            continue
        report.outcomes += outcomes
        report.gaps += gaps
        for s in claim.sources if staleness else ():
            if s.path in checked:
                continue
            checked.add(s.path)
            try:
                why = s.staleness(root, cache[s.path])
            except ClaimError as exc:
                report.errors.append(f"{claim.name}: {exc}")
                continue
            if why:
                report.stale.append(why)
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--check", action="store_true", help="exit 1 if any stated number differs or is stale")
    g.add_argument("--list", action="store_true", help="print every checked number and every gap")
    p.add_argument("--root", default=str(ROOT), help="project root (default: this checkout)")
    args = p.parse_args(argv)
    report = run_checks(Path(args.root))
    print(report.render(verbose=args.list))
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
