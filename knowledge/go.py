"""Gene Ontology annotations and the GEARS-style GO similarity graph.

Annotations (gene symbol -> set of GO ids) are read from

* an OBO ontology plus a GAF annotation file, through goatools (:func:`read_gaf`), with a
  namespace filter, an evidence-code filter and optional propagation to ancestor terms;
* GEARS's ``gene2go_all.pkl`` (:func:`read_gene2go_pickle`), through a restricted unpickler that
  only accepts plain dicts, sets, lists, tuples and strings (:func:`read_data_pickle`, the project's
  one way to read a pickle);
* a plain two-column TSV of gene and GO id (:func:`read_go_tsv`).

:func:`build_go_graph` turns annotations into GEARS's GO graph: the weight of an edge between two
genes is the Jaccard index of their GO-term sets; a pair is kept when the index is ``> threshold``
(0.1), and each target gene keeps its ``k`` (20) most similar source genes plus itself. The
Jaccard indices come from sparse matrix products over row chunks, not from pairwise loops.
"""

from __future__ import annotations

import contextlib
import datetime
import gzip
import io
import logging
import os
import pickle
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from knowledge._select import auto_chunk_rows, select_top_k
from knowledge.graph import GeneGraph
from priorgnn.io import atomic_write, hash_arrays, sha256_file
from priorgnn.errors import GraphError

log = logging.getLogger(__name__)

__all__ = [
    "GoAnnotations",
    "NAMESPACES",
    "read_obo",
    "read_gaf",
    "read_gene2go_pickle",
    "read_go_tsv",
    "build_go_graph",
    "jaccard_top_k",
    "pairwise_jaccard",
    "read_data_pickle",
    "subset_go_files",
]

#: GAF aspect letters and the namespaces they stand for.
NAMESPACES = {"BP": "P", "MF": "F", "CC": "C"}
_NAMESPACE_ALIASES = {
    "bp": "BP", "p": "BP", "biological_process": "BP",
    "mf": "MF", "f": "MF", "molecular_function": "MF",
    "cc": "CC", "c": "CC", "cellular_component": "CC",
}
_GO_ID = re.compile(r"^GO:\d{7}$")
_TAXON = re.compile(r"^taxon:\d+(\|taxon:\d+)*$")
_DATE = re.compile(r"^\d{8}$")
#: Relations (besides ``is_a``) that propagation may follow.
PROPAGATION_RELATIONS = ("part_of",)


# ---------------------------------------------------------------------------------------------------
# annotations
# ---------------------------------------------------------------------------------------------------
@dataclass
class GoAnnotations:
    """Genes and their GO-term sets, with where they came from.

    Attributes
    ----------
    gene2go
        Gene (symbol, or the GAF's gene id) -> frozenset of GO ids. Genes with an empty set are
        not stored.
    sources
        Files read, each ``{"role", "path", "sha256"}``.
    params
        How they were read (filters, propagation).
    """

    gene2go: dict[str, frozenset[str]]
    sources: list[dict[str, str]] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.gene2go = {str(g): frozenset(map(str, t)) for g, t in self.gene2go.items() if len(t)}

    def __len__(self) -> int:
        return len(self.gene2go)

    @property
    def genes(self) -> list[str]:
        """Annotated genes, sorted."""
        return sorted(self.gene2go)

    @property
    def terms(self) -> list[str]:
        """GO ids used by any gene, sorted."""
        return sorted(set().union(*self.gene2go.values())) if self.gene2go else []

    @property
    def n_annotations(self) -> int:
        return sum(len(t) for t in self.gene2go.values())

    @property
    def content_hash(self) -> str:
        genes = self.genes
        return hash_arrays({g: sorted(self.gene2go[g]) for g in genes})

    def restrict(self, genes: Iterable[str]) -> GoAnnotations:
        """The annotations of ``genes`` only (unannotated genes are skipped)."""
        keep = {str(g) for g in genes}
        return GoAnnotations({g: t for g, t in self.gene2go.items() if g in keep},
                             list(self.sources), dict(self.params))

    def to_gene2go_pickle(self, path: str | os.PathLike, genes: Sequence[str] | None = None) -> Path:
        """Write GEARS's ``gene2go_all.pkl`` format: a plain dict of symbol -> set of GO ids.

        ``genes`` fixes the key order (GEARS breaks top-k ties by that order).
        """
        keys = list(genes) if genes is not None else self.genes
        data = {g: set(self.gene2go[g]) for g in keys if g in self.gene2go}
        path = Path(path)
        with atomic_write(path, "wb") as fh:
            # protocol 4 stores sets with data opcodes only, so read_gene2go_pickle accepts it
            pickle.dump(data, fh, protocol=4)
        return path

    def to_tsv(self, path: str | os.PathLike) -> Path:
        """Write a ``gene<TAB>go_id`` table (one row per annotation, sorted), readable by
        :func:`read_go_tsv`."""
        path = Path(path)
        with atomic_write(path, "w", encoding="utf-8") as fh:
            fh.write("gene\tgo_id\n")
            for g in self.genes:
                for t in sorted(self.gene2go[g]):
                    fh.write(f"{g}\t{t}\n")
        return path


def _source(role: str, path: str | os.PathLike) -> dict[str, str]:
    return {"role": role, "path": str(path), "sha256": sha256_file(path)}


def _check_file(path: str | os.PathLike, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise GraphError(f"{path}: {what} not found. Check the path (or fetch the GO files with "
                         "`python -m knowledge download-go`).")
    return path


@contextlib.contextmanager
def _open_text(path: Path) -> Iterator[io.TextIOBase]:
    """Open a text file, gzip-compressed or not (decided by its magic bytes, not its name)."""
    with open(path, "rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    try:
        if gz:
            with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
                yield fh
        else:
            with open(path, encoding="utf-8", newline="") as fh:
                yield fh
    except UnicodeDecodeError as exc:
        raise GraphError(f"{path}: not a UTF-8 text file ({exc.reason}); is it the right file?") from None
    except (OSError, EOFError) as exc:
        raise GraphError(f"{path}: cannot be read ({exc}); the file may be truncated. Fetch it again.") from None


def _progress(iterable, *, enabled: bool, **kwargs):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, **kwargs)


# ---------------------------------------------------------------------------------------------------
# OBO
# ---------------------------------------------------------------------------------------------------
@dataclass
class _OboScan:
    live: set[str]
    obsolete: set[str]
    alt_ids: dict[str, str]
    edges: list[tuple[str, str, str]]  # (child, parent, relation) between live terms' references


def _scan_obo(path: Path, text_out: io.TextIOBase | None) -> _OboScan:
    """One pass over an OBO file: term ids, obsolete flags, alt ids and parent references.

    goatools accepts some broken ontologies without a word and fails on others with a bare
    ``KeyError`` or ``RecursionError``; this scan lets :func:`read_obo` name the bad terms first.
    The text is copied to ``text_out`` (goatools reads only uncompressed files).
    """
    live: set[str] = set()
    obsolete: set[str] = set()
    alt_ids: dict[str, str] = {}
    edges: list[tuple[str, str, str]] = []
    in_term = False
    cur: str | None = None
    cur_obsolete = False
    cur_edges: list[tuple[str, str, str]] = []
    cur_alts: list[str] = []
    start_line = 0

    def finish() -> None:
        if not in_term:
            return
        if cur is None:
            raise GraphError(f"{path}: the [Term] stanza at line {start_line} has no id. Fix or remove it.")
        if cur in live or cur in obsolete:
            raise GraphError(f"{path}: term {cur} is defined twice (second at line {start_line}).")
        (obsolete if cur_obsolete else live).add(cur)
        if not cur_obsolete:
            edges.extend(cur_edges)
        for alt in cur_alts:
            alt_ids[alt] = cur

    with _open_text(path) as fh:
        for lnum, raw in enumerate(fh, 1):
            if text_out is not None:
                text_out.write(raw)
            line = raw.strip()
            if line.startswith("["):
                finish()
                in_term = line.lower() == "[term]"
                cur, cur_obsolete, cur_edges, cur_alts, start_line = None, False, [], [], lnum
                continue
            if not in_term or not line or line.startswith("!"):
                continue
            tag, _, value = line.partition(":")
            value = value.split("!")[0].strip()
            if tag == "id":
                cur = value.split()[0] if value else None
            elif tag == "is_a" and value:
                cur_edges.append((cur or "?", value.split()[0], "is_a"))
            elif tag == "relationship":
                parts = value.split()
                if len(parts) < 2:
                    raise GraphError(f"{path}, line {lnum}: malformed relationship {raw.strip()!r}; "
                                     "expected 'relationship: <type> <term id>'.")
                cur_edges.append((cur or "?", parts[1], parts[0]))
            elif tag == "is_obsolete":
                cur_obsolete = value.lower() == "true"
            elif tag == "alt_id" and value:
                cur_alts.append(value.split()[0])
        finish()
    if not live:
        raise GraphError(f"{path}: no [Term] stanzas found; is this an OBO ontology file?")
    return _OboScan(live, obsolete, alt_ids, edges)


def _check_obo(path: Path, scan: _OboScan) -> None:
    """Raise :class:`GraphError` naming unknown parents or a cycle."""
    from graphlib import CycleError, TopologicalSorter

    unknown = [(c, p, r) for c, p, r in scan.edges if p not in scan.live]
    if unknown:
        shown = "; ".join(
            f"{c} {r} {p}" + (" (obsolete)" if p in scan.obsolete else "") for c, p, r in unknown[:10]
        )
        more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        raise GraphError(
            f"{path}: {len(unknown)} parent reference(s) to terms the ontology does not define (or "
            f"marks obsolete): {shown}{more}. Use a complete, consistent ontology file (e.g. "
            "go-basic.obo of one release, matching the annotations)."
        )
    sorter: TopologicalSorter = TopologicalSorter()
    for term in scan.live:
        sorter.add(term)
    for c, p, _ in scan.edges:
        sorter.add(c, p)
    try:
        sorter.prepare()
    except CycleError as exc:
        cycle = exc.args[1] if len(exc.args) > 1 else []
        raise GraphError(
            f"{path}: the ontology has a cycle through {' -> '.join(map(str, cycle))} (over is_a and "
            "relationship edges). An ontology must be acyclic; use an unmodified GO release."
        ) from None


def read_obo(path: str | os.PathLike):
    """Read and check an OBO ontology (plain or gzip) with goatools.

    Parameters
    ----------
    path
        OBO file, e.g. ``go-basic.obo`` (or ``.obo.gz``).

    Returns
    -------
    goatools.obo_parser.GODag
        Loaded with ``relationship`` attributes; obsolete terms are not loaded. The DAG also
        carries ``.source`` (``{"role", "path", "sha256"}``) for provenance.

    Raises
    ------
    GraphError
        If the file is missing or unreadable, a term refers to a parent the file does not define
        (or marks obsolete), or the is_a / relationship edges contain a cycle. goatools alone would
        fail on these with a bare ``KeyError`` or ``RecursionError``, or not at all.
    """
    from goatools.obo_parser import GODag

    path = _check_file(path, "OBO ontology")
    with tempfile.TemporaryDirectory(prefix="priorgnn-obo-") as tmp:
        plain = Path(tmp) / "ontology.obo"
        with open(plain, "w", encoding="utf-8", newline="") as out:
            scan = _scan_obo(path, out)
        _check_obo(path, scan)
        try:
            dag = GODag(str(plain), optional_attrs={"relationship"}, load_obsolete=False, prt=None)
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - goatools raises bare errors
            raise GraphError(f"{path}: goatools could not parse the ontology ({type(exc).__name__}: "
                             f"{exc}). Check the file is OBO 1.2.") from None
    dag.source = _source("obo", path)
    log.info("read ontology %s: %d terms (%s)", path.name, len(scan.live), dag.data_version or "no version")
    return dag


# ---------------------------------------------------------------------------------------------------
# GAF
# ---------------------------------------------------------------------------------------------------
_GAF_COLUMNS = {"1": 15, "2": 17}
_GAF_VERSIONS = ("1.0", "2.0", "2.1", "2.2")  # those goatools knows


def _validate_gaf(path: Path, out: io.TextIOBase, *, progress: bool) -> tuple[str, int]:
    """Check every line of a GAF and copy it, cleaned, to ``out`` for goatools.

    goatools's reader reports a malformed line by printing a traceback and calling ``sys.exit``,
    so the checks goatools relies on (column count, GO id, aspect, taxon, date) are done here
    first, naming the line numbers. The copy has every header goatools validates, no blank lines
    and an empty annotation-extension column (unused here; goatools prints a warning per
    malformed extension).

    Returns
    -------
    version, n_lines
        The GAF version used and the number of annotation lines.
    """
    version: str | None = None
    headers: list[str] = []
    errors: list[str] = []
    n_bad = 0
    n_lines = 0
    ok_dates: set[str] = set()
    ok_taxa: set[str] = set()
    n_cols = None
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(unit=" lines", unit_scale=True, desc=f"checking {path.name}")
    lnum = 0
    with _open_text(path) as fh:
        body_started = False
        for lnum, raw in enumerate(fh, 1):
            if bar is not None and lnum % 20000 == 0:
                bar.update(20000)
            if raw.startswith("!"):
                if body_started:
                    continue  # goatools treats late comment lines as data; drop them
                headers.append(raw.rstrip("\r\n"))
                m = re.match(r"!\s*gaf-version:\s*(\S+)", raw)
                if m:
                    version = m.group(1)
                continue
            line = raw.rstrip("\r\n")
            if not line.strip():
                continue
            if not body_started:
                body_started = True
                if version is None:
                    ncols_first = len(line.split("\t"))
                    version = "1.0" if ncols_first == 15 else "2.2"
                if version not in _GAF_VERSIONS:
                    raise GraphError(f"{path}: unsupported GAF version {version!r}; GAF 1.0, 2.0, 2.1 "
                                     "and 2.2 are read.")
                n_cols = _GAF_COLUMNS[version[0]]
                _write_gaf_header(out, headers, version)
            fields = line.split("\t")
            problem = None
            if len(fields) != n_cols:
                problem = f"{len(fields)} tab-separated columns, expected {n_cols} for GAF {version}"
            elif not fields[1] or not fields[2]:
                problem = "empty gene id or symbol (columns 2-3)"
            elif not _GO_ID.match(fields[4]):
                problem = f"GO id {fields[4]!r} (column 5) is not of the form GO:0000000"
            elif not fields[6]:
                problem = "empty evidence code (column 7)"
            elif fields[8] not in ("P", "F", "C"):
                problem = f"aspect {fields[8]!r} (column 9) is not P, F or C"
            else:
                taxon, date = fields[12], fields[13]
                if taxon not in ok_taxa:
                    if not _TAXON.match(taxon):
                        problem = f"taxon {taxon!r} (column 13) is not of the form taxon:9606"
                    else:
                        ok_taxa.add(taxon)
                if problem is None and date not in ok_dates:
                    try:
                        if not _DATE.match(date):
                            raise ValueError
                        datetime.date(int(date[:4]), int(date[4:6]), int(date[6:]))
                        ok_dates.add(date)
                    except ValueError:
                        problem = f"date {date!r} (column 14) is not a valid YYYYMMDD date"
            if problem is not None:
                n_bad += 1
                if len(errors) < 5:
                    errors.append(f"line {lnum}: {problem}")
                continue
            n_lines += 1
            if n_cols == 17:
                fields[15] = ""
            out.write("\t".join(fields) + "\n")
    if bar is not None:
        bar.update(lnum - bar.n)
        bar.close()
    if n_bad:
        raise GraphError(
            f"{path}: {n_bad} malformed GAF line(s): " + "; ".join(errors)
            + (" ..." if n_bad > len(errors) else "") + ". Fix or remove them (GAF is tab-separated, "
            "one annotation per line); a truncated download shows up as a short last line."
        )
    if n_lines == 0:
        raise GraphError(f"{path}: no annotation lines found; is this a GAF file?")
    return version or "2.2", n_lines


def _write_gaf_header(out: io.TextIOBase, headers: list[str], version: str) -> None:
    have = " ".join(headers)
    lines = list(headers)
    if "gaf-version" not in have:
        lines.insert(0, f"!gaf-version: {version}")
    # goatools logs an error for GAF 2.2 headers lacking these two lines; they carry no data here
    if version >= "2.2":
        if "generated-by" not in have:
            lines.append("!generated-by: unknown")
        if "date-generated" not in have:
            lines.append("!date-generated: unknown")
    out.write("\n".join(lines) + "\n")


def _parse_namespaces(namespaces: Iterable[str] | str | None) -> list[str]:
    if namespaces is None:
        return ["BP", "CC", "MF"]
    if isinstance(namespaces, str):
        namespaces = [n for n in re.split(r"[,\s]+", namespaces) if n]
    out = set()
    for n in namespaces:
        key = _NAMESPACE_ALIASES.get(str(n).lower())
        if key is None:
            raise GraphError(f"unknown GO namespace {n!r}; use BP, MF or CC (or their full names).")
        out.add(key)
    if not out:
        raise GraphError("no GO namespace selected; use any of BP, MF, CC.")
    return sorted(out)


def _evidence_codes(include: Iterable[str] | None, exclude: Iterable[str] | None) -> tuple[set | None, set]:
    """Expand evidence codes and goatools group names (e.g. ``Experimental``) to code sets."""
    from goatools.evidence_codes import EvidenceCodes

    ev = EvidenceCodes()
    known_groups = {g.lower(): g for g in ev.grp2codes}

    def expand(items: Iterable[str] | None) -> set[str] | None:
        if items is None:
            return None
        if isinstance(items, str):
            items = [i for i in re.split(r"[,\s]+", items) if i]
        codes: set[str] = set()
        for item in items:
            if item.upper() in ev.code2nt:
                codes.add(item.upper())
            elif item.lower() in known_groups:
                codes |= set(ev.grp2codes[known_groups[item.lower()]])
            else:
                raise GraphError(
                    f"unknown evidence code or group {item!r}. Codes: {', '.join(ev.code2nt)}; groups: "
                    f"{', '.join(ev.grp2codes)}."
                )
        return codes

    inc = expand(include)
    exc = expand(exclude) or set()
    return inc, exc


def read_gaf(
    gaf: str | os.PathLike,
    obo: str | os.PathLike | Any | None = None,
    *,
    namespaces: Iterable[str] | str | None = None,
    evidence: Iterable[str] | str | None = None,
    exclude_evidence: Iterable[str] | str | None = ("ND",),
    propagate: bool = False,
    relationships: Iterable[str] = (),
    gene_id: str = "symbol",
    progress: bool = False,
) -> GoAnnotations:
    """Read GO annotations from a GAF file (plain or gzip) with goatools.

    Parameters
    ----------
    gaf
        GAF 1.0 / 2.x annotation file.
    obo
        The ontology (path, or a DAG from :func:`read_obo`). With it, annotations to terms the
        ontology does not define (obsolete or unknown ids) are dropped and alternative ids mapped to
        their primary id. Needed for ``propagate``.
    namespaces
        Any of ``BP``, ``MF``, ``CC`` (default: all three), by the GAF's aspect column.
    evidence
        Evidence codes (or goatools group names such as ``Experimental``, ``Similarity``,
        ``Automatic``) to keep; default all.
    exclude_evidence
        Codes or groups to drop; default ``ND`` (no biological data), as goatools does.
    propagate
        Add every ancestor of each annotated term, following ``is_a`` edges, and the relations in
        ``relationships`` (only ``part_of`` is allowed). ``regulates`` edges are never followed:
        a regulator of a process is not part of it.
    relationships
        Extra relations for propagation; ``("part_of",)`` or empty.
    gene_id
        ``"symbol"`` (GAF column 3, default) or ``"id"`` (column 2) as the gene key.
    progress
        Show a progress bar while checking the file.

    Returns
    -------
    GoAnnotations
        ``NOT``-qualified annotations are always dropped.

    Raises
    ------
    GraphError
        On a missing or malformed file (the line numbers of malformed lines are named), on
        unknown options, or if no annotation passes the filters.
    """
    from goatools.anno.gaf_reader import GafReader

    gaf = _check_file(gaf, "GAF annotation file")
    nss = _parse_namespaces(namespaces)
    include, exclude = _evidence_codes(evidence, exclude_evidence)
    relationships = tuple(sorted(set(relationships)))
    bad_rel = set(relationships) - set(PROPAGATION_RELATIONS)
    if bad_rel:
        raise GraphError(f"propagation can follow is_a and {', '.join(PROPAGATION_RELATIONS)} only, "
                         f"not {', '.join(sorted(bad_rel))}.")
    if relationships and not propagate:
        raise GraphError("relationships are only used with propagate=True (--propagate).")
    if gene_id not in ("symbol", "id"):
        raise GraphError(f"gene_id must be 'symbol' or 'id', not {gene_id!r}.")
    dag = None
    if obo is not None:
        dag = obo if hasattr(obo, "data_version") and isinstance(obo, dict) else read_obo(obo)
    if propagate and dag is None:
        raise GraphError("propagation to ancestor terms needs the ontology; pass obo= (--obo).")

    with tempfile.TemporaryDirectory(prefix="priorgnn-gaf-") as tmp:
        # goatools opens files by name, uncompressed; it also writes its error log over the path it
        # was given, so it only ever sees this private copy.
        plain = Path(tmp) / "annotations.gaf"
        with open(plain, "w", encoding="utf-8", newline="") as out:
            version, n_lines = _validate_gaf(gaf, out, progress=progress)
        log.info("reading %d annotation lines of %s (GAF %s) with goatools", n_lines, gaf.name, version)
        try:
            reader = GafReader(str(plain), namespaces=set(nss) if len(nss) < 3 else None, prt=None)
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - goatools exits on bad lines
            raise GraphError(f"{gaf}: goatools could not read the annotations ({type(exc).__name__}: "
                             f"{exc}). Check that it is a GAF file.") from None
    aspects = {NAMESPACES[n] for n in nss}
    ns_of = {"P": "BP", "F": "MF", "C": "CC"}
    keep_ns = {ns_of[a] for a in aspects}
    gene2go: dict[str, set[str]] = {}
    n_not = n_ev = n_unknown = n_alt = 0
    for nt in reader.associations:
        if nt.NS not in keep_ns:
            continue
        if "NOT" in nt.Qualifier:
            n_not += 1
            continue
        code = nt.Evidence_Code
        if (include is not None and code not in include) or code in exclude:
            n_ev += 1
            continue
        term = nt.GO_ID
        if dag is not None:
            rec = dag.get(term)
            if rec is None:
                n_unknown += 1
                continue
            if rec.item_id != term:
                n_alt += 1
                term = rec.item_id
        gene = nt.DB_Symbol if gene_id == "symbol" else nt.DB_ID
        gene2go.setdefault(str(gene), set()).add(term)
    if n_unknown:
        log.warning("%d annotation(s) name GO ids the ontology does not define (obsolete or from "
                    "another release); dropped", n_unknown)
    n_direct = sum(len(v) for v in gene2go.values())
    if propagate and gene2go:
        from goatools.godag.go_tasks import get_go2ancestors

        used = {dag[t] for terms in gene2go.values() for t in terms}
        ancestors = get_go2ancestors(used, set(relationships) if relationships else None)
        for terms in gene2go.values():
            extra: set[str] = set()
            for t in terms:
                extra |= ancestors.get(t, set())
            terms |= extra
    if not gene2go:
        raise GraphError(f"{gaf}: no annotation passed the filters (namespaces {','.join(nss)}, "
                         f"evidence {sorted(include) if include else 'all'} minus {sorted(exclude)}). "
                         "Relax the filters.")
    params = {
        "format": f"gaf-{version}",
        "namespaces": nss,
        "evidence": sorted(include) if include is not None else None,
        "exclude_evidence": sorted(exclude),
        "exclude_not": True,
        "propagate": bool(propagate),
        "propagate_relations": ["is_a", *relationships] if propagate else [],
        "gene_id": gene_id,
        "ontology_version": getattr(dag, "data_version", None) if dag is not None else None,
    }
    sources = [_source("gaf", gaf)] + ([dag.source] if dag is not None and hasattr(dag, "source") else [])
    out = GoAnnotations(gene2go, sources, params)
    log.info(
        "%s: %d genes, %d direct gene-term pairs (%d after propagation); dropped %d NOT, %d by "
        "evidence, %d unknown terms; %d alternative ids mapped", gaf.name, len(out), n_direct,
        out.n_annotations, n_not, n_ev, n_unknown, n_alt,
    )
    return out


def subset_go_files(
    obo: str | os.PathLike,
    gaf: str | os.PathLike,
    genes: Iterable[str],
    out_obo: str | os.PathLike,
    out_gaf: str | os.PathLike,
    *,
    note: Sequence[str] = (),
) -> dict[str, int]:
    """Write the part of an ontology and its annotation file that concerns ``genes``, line for line.

    ``out_gaf`` holds the GAF's header lines, ``note`` (each line as a ``!`` comment) and every
    annotation line whose gene symbol (column 3) is one of ``genes``, unchanged. ``out_obo`` holds
    the OBO's header, its ``[Typedef]`` stanzas, and the ``[Term]`` stanzas of the terms those lines
    name (an alternative id stands for its term) and of every term they reach over ``is_a`` and
    ``relationship`` lines, unchanged. Read together with :func:`read_gaf`, the two files give these
    genes the same annotations as the whole files do (filters, alternative ids and propagation
    alike), and no other gene; reading them takes a fraction of a second. Both are written
    atomically (plain text, whatever the inputs' compression).

    Returns
    -------
    dict
        ``n_lines`` (annotation lines kept), ``n_genes`` (genes found), ``n_terms`` (terms written).

    Raises
    ------
    GraphError
        If a file is missing or unreadable, or none of ``genes`` is annotated in ``gaf``.
    """
    obo = _check_file(obo, "OBO ontology")
    gaf = _check_file(gaf, "GAF annotation file")
    keep_genes = {str(g) for g in genes}
    header: list[str] = []
    body: list[str] = []
    named: set[str] = set()
    found: set[str] = set()
    with _open_text(gaf) as fh:
        for raw in fh:
            if raw.startswith("!"):
                if not body:
                    header.append(raw if raw.endswith("\n") else raw + "\n")
                continue
            fields = raw.split("\t")
            if len(fields) > 4 and fields[2] in keep_genes:
                body.append(raw if raw.endswith("\n") else raw + "\n")
                named.add(fields[4])
                found.add(fields[2])
    if not body:
        raise GraphError(f"{gaf}: none of the {len(keep_genes)} genes has an annotation line (column 3 "
                         "holds the gene symbols). Check that the genes are symbols of this species.")
    scan = _scan_obo(obo, None)
    parents: dict[str, list[str]] = {}
    for child, parent, _ in scan.edges:
        parents.setdefault(child, []).append(parent)
    todo = [scan.alt_ids.get(t, t) for t in sorted(named)]
    keep_terms: set[str] = set()
    while todo:
        term = todo.pop()
        if term in keep_terms or term not in scan.live:
            continue
        keep_terms.add(term)
        todo.extend(parents.get(term, ()))
    stanzas: list[str] = []
    with _open_text(obo) as fh:
        stanza: list[str] = []
        kind = "header"

        def flush() -> None:
            if kind in ("header", "typedef") or (kind == "term" and _stanza_id(stanza) in keep_terms):
                stanzas.extend(stanza)

        for raw in fh:
            if raw.lstrip().startswith("["):
                flush()
                tag = raw.strip().lower()
                kind = "term" if tag == "[term]" else ("typedef" if tag == "[typedef]" else "other")
                stanza = []
            stanza.append(raw if raw.endswith("\n") else raw + "\n")
        flush()
    with atomic_write(Path(out_gaf), "w", encoding="utf-8", newline="") as fh:
        fh.writelines(header)
        fh.writelines(f"! {line}\n" for line in note)
        fh.writelines(body)
    with atomic_write(Path(out_obo), "w", encoding="utf-8", newline="") as fh:
        fh.writelines(stanzas)
    log.info("wrote %d annotation lines of %d genes and %d terms (with their ancestors) to %s and %s",
             len(body), len(found), len(keep_terms), out_gaf, out_obo)
    return {"n_lines": len(body), "n_genes": len(found), "n_terms": len(keep_terms)}


def _stanza_id(lines: list[str]) -> str | None:
    for raw in lines:
        tag, _, value = raw.strip().partition(":")
        if tag == "id":
            value = value.split("!")[0].strip()
            return value.split()[0] if value else None
    return None


# ---------------------------------------------------------------------------------------------------
# gene2go pickle and TSV
# ---------------------------------------------------------------------------------------------------
class _DataOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain data only: every global is refused, so no code can run.

    Dicts, lists, tuples, strings and (with protocol 4+) sets are built by data opcodes, which need
    no global. Pickles of protocol 2-3 build a set by calling the ``set`` (or ``frozenset``)
    constructor on a list; those two constructors are the only globals allowed, since calling them
    on data cannot run code.
    """

    _ALLOWED = {("builtins", "set"), ("builtins", "frozenset"),
                ("__builtin__", "set"), ("__builtin__", "frozenset")}

    def find_class(self, module: str, name: str):  # noqa: D102
        if (module, name) in self._ALLOWED:
            return set if name == "set" else frozenset
        raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed")


def read_data_pickle(path: str | os.PathLike) -> Any:
    """Unpickle plain data only (dicts, lists, tuples, sets, strings, numbers): every global but the
    ``set`` and ``frozenset`` constructors is refused before it is built, so no code in the file can
    run.

    Raises
    ------
    pickle.UnpicklingError
        If the file asks for any object beyond plain data.
    OSError, EOFError, ValueError, ...
        As :meth:`pickle.Unpickler.load` does for a missing, truncated or malformed file; callers
        translate them into their own errors.
    """
    with open(path, "rb") as fh:
        return _DataOnlyUnpickler(fh).load()


def read_gene2go_pickle(path: str | os.PathLike) -> GoAnnotations:
    """Read GEARS's ``gene2go_all.pkl`` (a dict of gene symbol -> set of GO ids), safely.

    The file is read by an unpickler that refuses every global (no class, no function), so a
    crafted file cannot run code; anything but plain dicts, sets, lists, tuples and strings is
    refused.

    Raises
    ------
    GraphError
        If the file is not such a dict, or asks for any object beyond plain data.
    """
    path = _check_file(path, "gene2go pickle")
    try:
        data = read_data_pickle(path)
    except pickle.UnpicklingError as exc:
        raise GraphError(
            f"{path}: refused to unpickle ({exc}). Only a plain dict of gene symbol -> set of GO ids "
            "is read; convert other formats to a gene<TAB>GO-id TSV and use read_go_tsv (--tsv)."
        ) from None
    except (EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError, MemoryError) as exc:
        raise GraphError(f"{path}: not a readable pickle ({type(exc).__name__}: {exc}); the file may "
                         "be truncated or not a gene2go file.") from None
    if not isinstance(data, dict):
        raise GraphError(f"{path}: holds a {type(data).__name__}, not a dict of gene -> GO ids.")
    gene2go: dict[str, frozenset[str]] = {}
    for gene, terms in data.items():
        if not isinstance(gene, str) or not isinstance(terms, (set, frozenset, list, tuple)) or not all(
            isinstance(t, str) for t in terms
        ):
            raise GraphError(f"{path}: entry {gene!r} is not gene symbol -> set of GO-id strings.")
        gene2go[gene] = frozenset(terms)
    bad = [t for terms in gene2go.values() for t in terms if not _GO_ID.match(t)]
    if bad:
        raise GraphError(f"{path}: {len(bad)} value(s) are not GO ids, e.g. {bad[:3]}.")
    out = GoAnnotations(gene2go, [_source("gene2go_pickle", path)], {"format": "gene2go_pickle"})
    log.info("%s: %d genes, %d gene-term pairs", path.name, len(out), out.n_annotations)
    return out


def read_go_tsv(path: str | os.PathLike) -> GoAnnotations:
    """Read a two-column TSV of gene and GO id (a header line ``gene<TAB>go_id`` is optional).

    Blank lines and lines starting with ``#`` are skipped.

    Raises
    ------
    GraphError
        Naming the line numbers of lines without exactly two columns or with a malformed GO id.
    """
    path = _check_file(path, "gene-GO TSV")
    gene2go: dict[str, set[str]] = {}
    errors: list[str] = []
    n_bad = 0
    with _open_text(path) as fh:
        for lnum, raw in enumerate(fh, 1):
            line = raw.rstrip("\r\n")
            if not line.strip() or line.startswith("#"):
                continue
            fields = line.split("\t")
            if lnum == 1 and len(fields) == 2 and not _GO_ID.match(fields[1].strip()):
                continue  # header
            problem = None
            if len(fields) != 2:
                problem = f"{len(fields)} tab-separated columns, expected 2 (gene, GO id)"
            elif not fields[0].strip():
                problem = "empty gene"
            elif not _GO_ID.match(fields[1].strip()):
                problem = f"{fields[1]!r} is not a GO id of the form GO:0000000"
            if problem:
                n_bad += 1
                if len(errors) < 5:
                    errors.append(f"line {lnum}: {problem}")
                continue
            gene2go.setdefault(fields[0].strip(), set()).add(fields[1].strip())
    if n_bad:
        raise GraphError(f"{path}: {n_bad} malformed line(s): " + "; ".join(errors) + ". Each line must "
                         "be gene<TAB>GO id.")
    if not gene2go:
        raise GraphError(f"{path}: no annotations found.")
    out = GoAnnotations(gene2go, [_source("go_tsv", path)], {"format": "tsv"})
    log.info("%s: %d genes, %d gene-term pairs", path.name, len(out), out.n_annotations)
    return out


# ---------------------------------------------------------------------------------------------------
# the GO graph
# ---------------------------------------------------------------------------------------------------
def _incidence(gene2go: Mapping[str, frozenset[str]], genes: Sequence[str]) -> sp.csr_matrix:
    """Binary gene x term CSR matrix for ``genes`` (all annotated)."""
    return _set_incidence([gene2go[g] for g in genes])


def _set_incidence(sets: Sequence[Iterable[str]]) -> sp.csr_matrix:
    """Binary set x element CSR matrix, one row per set (an empty set is an empty row)."""
    term_index: dict[str, int] = {}
    indptr = np.zeros(len(sets) + 1, dtype=np.int64)
    cols: list[int] = []
    for i, terms in enumerate(sets):
        for t in terms:
            cols.append(term_index.setdefault(t, len(term_index)))
        indptr[i + 1] = len(cols)
    indices = np.asarray(cols, dtype=np.int32)
    data = np.ones(len(indices), dtype=np.float32)
    A = sp.csr_matrix((data, indices, indptr), shape=(len(sets), max(1, len(term_index))))
    A.sum_duplicates()
    return A


def pairwise_jaccard(sets: Sequence[Iterable[str]]) -> np.ndarray:
    """The full matrix of Jaccard indices ``len(a & b) / len(a | b)`` between ``sets`` (e.g. the GO
    terms of a few hundred genes), ``[n, n]`` float64, from one sparse product of their incidence
    matrix (for all genes of a genome, :func:`jaccard_top_k` keeps memory bounded).

    The values equal Python's ``len(a & b) / len(a | b)`` exactly. The index of a set with itself is 1,
    and of two empty sets 0 (no shared term).
    """
    A = _set_incidence(sets).astype(np.float64)
    A.data[:] = 1.0  # an element listed twice is still one element
    inter = (A @ A.T).toarray()
    size = np.diff(A.indptr).astype(np.float64)
    union = size[:, None] + size[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _split_by_frequency(A: sp.csr_matrix, max_dense_terms: int = 2048) -> tuple[sp.csr_matrix, np.ndarray | None]:
    """Split a binary gene x term matrix into rare terms (sparse) and frequent terms (dense).

    A sparse product costs about ``deg**2`` operations per term, so a handful of terms annotating
    thousands of genes (``protein binding``, or every ancestor term after propagation) dominate
    ``A @ A.T``; as dense columns they cost one BLAS matrix product instead, on every core.
    """
    n = A.shape[0]
    degree = np.bincount(A.indices, minlength=A.shape[1])
    # dense when its deg**2 sparse operations (a few ns each, with the scatter into the chunk)
    # outweigh n**2 BLAS multiply-adds (some 200 times cheaper): deg > n / 15, as measured
    frequent = np.nonzero(degree > max(64, n // 15))[0]
    if frequent.size == 0:
        return A, None
    frequent = frequent[np.argsort(-degree[frequent], kind="stable")][:max_dense_terms]
    is_frequent = np.zeros(A.shape[1], dtype=bool)
    is_frequent[frequent] = True
    dense = np.ascontiguousarray(A[:, frequent].toarray(), dtype=np.float32)
    rare = A[:, np.nonzero(~is_frequent)[0]].tocsr()
    return rare, dense


def jaccard_top_k(
    A: sp.csr_matrix, *, k: int = 20, threshold: float = 0.1, chunk_size: int | None = None,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of a binary matrix, the ``k + 1`` rows of highest Jaccard index above ``threshold``.

    Intersections are ``A @ A.T``, computed a chunk of rows at a time (a dense ``[chunk, n]`` block)
    to bound memory; Jaccard = ``inter / (|a| + |b| - inter)`` in float64, which equals Python's
    ``len(a & b) / len(a | b)`` exactly, so ties and the threshold behave as in GEARS.

    Parameters
    ----------
    A
        Binary ``[n, m]`` CSR matrix without empty rows.
    k, threshold, chunk_size, progress
        Neighbours kept per row (plus the row itself), strict lower bound on the index, rows per
        chunk (default: about 64 MB per dense block), progress bar.

    Returns
    -------
    targets, sources, weights
        Row ``targets[e]`` keeps row ``sources[e]`` with Jaccard ``weights[e]`` (float64).
    """
    A = sp.csr_matrix(A, dtype=np.float32)
    n = A.shape[0]
    size = np.diff(A.indptr).astype(np.float64)
    if n and size.min() <= 0:
        raise GraphError("jaccard_top_k: every row needs at least one term.")
    sparse_part, dense_part = _split_by_frequency(A)
    sparse_t = sparse_part.T.tocsr()
    dense_t = dense_part.T.copy() if dense_part is not None else None
    chunk = min(n, chunk_size or auto_chunk_rows(n)) if n else 1
    # buffers reused by every chunk: fresh large arrays per chunk would pay page faults each time
    inter_buf = np.empty((chunk, n))
    union_buf = np.empty((chunk, n))
    dense_buf = np.empty((chunk, n), dtype=np.float32) if dense_part is not None else None
    out_t: list[np.ndarray] = []
    out_s: list[np.ndarray] = []
    out_w: list[np.ndarray] = []
    starts = range(0, n, chunk)
    for start in _progress(starts, enabled=progress, desc="Jaccard", unit="chunk", total=len(starts)):
        stop = min(n, start + chunk)
        c = stop - start
        inter, union = inter_buf[:c], union_buf[:c]
        if dense_part is not None:
            # shared frequent terms: a float32 product of 0/1 values is exact below 2**24 terms
            np.matmul(dense_part[start:stop], dense_t, out=dense_buf[:c])
            np.copyto(inter, dense_buf[:c])
        else:
            inter.fill(0.0)
        shared = sparse_part[start:stop] @ sparse_t  # shared rare terms; (row, col) entries are unique
        inter[np.repeat(np.arange(c), np.diff(shared.indptr)), shared.indices] += shared.data
        np.add(size[start:stop, None], size[None, :], out=union)
        np.subtract(union, inter, out=union)
        np.divide(inter, union, out=inter)  # the Jaccard index, as len(a & b) / len(a | b) gives it
        rows, cols = select_top_k(inter, k + 1, threshold)
        out_t.append(rows + start)
        out_s.append(cols)
        out_w.append(inter[rows, cols])
    if not out_t:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0)
    return np.concatenate(out_t), np.concatenate(out_s), np.concatenate(out_w)


def build_go_graph(
    annotations: GoAnnotations | Mapping[str, Iterable[str]],
    genes: Sequence[str] | None = None,
    *,
    k: int = 20,
    threshold: float = 0.1,
    chunk_size: int | None = None,
    progress: bool = False,
) -> GeneGraph:
    """GEARS's GO graph: Jaccard similarity of GO-term sets, top ``k`` (+ self) per gene.

    Parameters
    ----------
    annotations
        :class:`GoAnnotations`, or a plain mapping gene -> GO ids.
    genes
        Nodes of the graph, in this order. Similarity and the top-k are computed among these genes
        only (as GEARS does for its gene list); genes without annotations become isolated nodes.
        Default: every annotated gene, sorted.
    k
        Most similar genes kept per target gene, besides itself (GEARS: 20).
    threshold
        Keep pairs with Jaccard ``> threshold`` (GEARS: 0.1).
    chunk_size
        Rows per dense block of ``A @ A.T`` (default: about 64 MB per block).
    progress
        Show a progress bar over chunks.

    Returns
    -------
    GeneGraph
        Edge ``source -> target`` for each of the target's kept genes, weight = Jaccard index.
        A tie at a target's cut-off goes to the source listed first in ``genes``, as GEARS's
        ``nlargest(keep='first')`` does for its gene order.
    """
    if k < 0:
        raise GraphError(f"k must be >= 0, not {k}.")
    if not 0 <= threshold < 1:
        raise GraphError(f"the Jaccard threshold must be in [0, 1), not {threshold}.")
    if not isinstance(annotations, GoAnnotations):
        annotations = GoAnnotations({g: frozenset(t) for g, t in annotations.items()})
    gene2go = annotations.gene2go
    if genes is None:
        nodes = annotations.genes
    else:
        nodes = [str(g) for g in genes]
        if len(set(nodes)) != len(nodes):
            raise GraphError("build_go_graph(genes=...): the gene list has duplicates.")
    annotated = np.array([i for i, g in enumerate(nodes) if g in gene2go], dtype=np.int64)
    if annotated.size == 0:
        raise GraphError(
            f"none of the {len(nodes)} genes has a GO annotation. Check that the genes are gene "
            "symbols of the annotations' species (or use gene_id='id' for the GAF's gene ids)."
        )
    if annotated.size < len(nodes):
        log.info("%d of %d genes have no GO annotation and get no GO edges",
                 len(nodes) - annotated.size, len(nodes))
    A = _incidence(gene2go, [nodes[i] for i in annotated])
    log.info("GO graph: %d annotated genes x %d terms (%d annotations); k=%d, threshold=%g",
             A.shape[0], A.shape[1], A.nnz, k, threshold)
    tgt, src, w = jaccard_top_k(A, k=k, threshold=threshold, chunk_size=chunk_size, progress=progress)
    edge_index = np.stack([annotated[src], annotated[tgt]])
    provenance = {
        "kind": "go",
        "method": "jaccard of GO-term sets; top k+1 per target (self included) with score > threshold",
        "sources": list(annotations.sources),
        "annotation_params": dict(annotations.params),
        "params": {"k": int(k), "threshold": float(threshold)},
        "n_annotated": int(annotated.size),
        "n_terms": int(A.shape[1]),
        "annotations_hash": annotations.content_hash,
    }
    graph = GeneGraph(nodes, edge_index, w.astype(np.float32), provenance)
    log.info("GO graph: %s", graph)
    return graph
