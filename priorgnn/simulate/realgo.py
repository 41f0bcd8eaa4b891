"""Real human gene names for a simulation, with the real Gene Ontology as its knowledge files.

With ``gene_names="real_go"`` (:class:`~priorgnn.simulate.config.SimulatorConfig`) the simulated
genes are named after real human genes so that the simulator's module structure *is* real GO
co-annotation, and the simulation's knowledge files are the real ontology and human annotations
(restricted to its genes) rather than the GO-like files of :mod:`priorgnn.simulate.ontology`. The
network, its dynamics and the cells are drawn exactly as for synthetic names; only the names, and
with them the prior, change.

The GO files
------------
A folder holding ``go-basic.obo`` (or ``.obo.gz``) and ``goa_human.gaf.gz`` (or ``.gaf``), as
``python -m knowledge download-go --dest DIR`` writes it: ``simulate(..., go_dir=DIR)``, else the
folder named by ``$PRIORGNN_GO_DIR``. They are read with the project's readers
(:func:`knowledge.go.read_obo`, :func:`knowledge.go.read_gaf`: evidence ``ND`` and ``NOT``
annotations left out), once per process.

Mapping rule
------------
A gene belongs to a biological-process term when it is annotated to the term or to one of its
``is_a`` descendants (annotations propagated up ``is_a``, as GO consumers do). Only genes with a
symbol that is a valid gene name here (letters, digits, ``.``, ``_``, ``-``; not ``ctrl``) count.

1. Modules, largest first (ties by name), each take one term. Candidate terms are all
   biological-process terms in one seeded random order; a module of ``n`` genes takes the first
   term that has ``n`` to ``max(3 n, 10)`` genes (specific enough that its genes share a process),
   at least ``n`` of them not yet used by another module, and that shares at most 20% of the
   smaller term's genes with every term already chosen (the chosen terms are mostly disjoint; none
   is an ancestor or descendant of another).
2. A module split into sub-modules gives each sub-module (largest first) a nested term: the first
   ``is_a`` descendant of the module's term, in a seeded random order, that fits the sub-module's size
   by the same rule and is mostly disjoint from the module's other sub-module terms. A sub-module for
   which no descendant fits keeps the module's term.
3. Each sub-module's genes are the symbols of a seeded random sample of its term's genes not used
   elsewhere (so every member of a module is annotated to the module's term, and every member of a
   sub-module to the sub-module's term). Pathway groups are not mapped: the modules of a group get
   unrelated terms.

Everything is a deterministic function of the seed (the ``gene_names`` random stream) and the
contents of the GO files. The gene table records each gene's ``go_term`` (its module's term) and
``go_subterm`` (its sub-module's); ``knowledge.json`` lists the terms with their names and sizes.

Knowledge files
---------------
``go.obo`` and ``annotations.gaf`` in the simulation folder are :func:`knowledge.go.subset_go_files`
of the real files: every annotation line of the simulated genes, unchanged, and the ontology terms
these lines reach. The chosen terms are the signal; every other real annotation of these genes (other
processes, molecular functions, cellular components) and every missing one is the prior's realistic
noise. Annotations of genes outside the simulation are left out, as GEARS builds its GO graph over
its own gene list; the GO graph then covers the simulated genes only, which also keeps building it
fast. The fidelity knobs (``go_recall``, ``go_false_rate``, ``go_shuffle``) are refused
(:class:`~priorgnn.errors.ConfigError`): the real annotations are used as they are; degrade the GO
graph instead (prior option ``go_degrade``: dropout, rewiring, permuted labels, a random graph).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from priorgnn.errors import ConfigError
from priorgnn.io import sha256_file, write_json

log = logging.getLogger(__name__)

__all__ = ["GO_DIR_ENV", "REAL_GO_FIDELITY", "RealGO", "go_files", "load_real_go", "name_genes",
           "write_real_knowledge", "is_real_go", "term_table"]

#: The environment variable naming the folder of the real GO files (when ``go_dir`` is not given).
GO_DIR_ENV = "PRIORGNN_GO_DIR"
#: File names looked for in the GO folder, in order (those ``python -m knowledge download-go`` writes first).
OBO_NAMES = ("go-basic.obo", "go-basic.obo.gz")
GAF_NAMES = ("goa_human.gaf.gz", "goa_human.gaf")
#: A module (or sub-module) of ``n`` genes takes a term of ``n`` to ``max(TERM_SIZE_FACTOR * n, MIN_TERM_CAP)``
#: genes.
TERM_SIZE_FACTOR = 3
MIN_TERM_CAP = 10
#: Two chosen terms share at most this fraction of the smaller one's genes.
MAX_OVERLAP = 0.2
#: Why the fidelity knobs are refused for real GO (the message of the ConfigError).
REAL_GO_FIDELITY = ("a simulation with real gene names (gene_names='real_go') has the real GO files as its knowledge, "
                    "written with it (sim.obo_path, sim.gaf_path); the GO fidelity settings (go_recall, "
                    "go_false_rate, go_shuffle) do not apply to them. Leave them at their defaults, and degrade "
                    "the GO graph instead (prior option go_degrade: dropout:F, rewire, permute or random).")
_SYMBOL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_FIX = ("give the folder holding go-basic.obo (or .obo.gz) and goa_human.gaf.gz as go_dir (the study's and "
        f"the simulator's --go-dir) or in ${GO_DIR_ENV}; `python -m knowledge download-go --dest DIR` fetches "
        "them")


def go_files(go_dir: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """The ontology and annotation files in ``go_dir`` (default ``$PRIORGNN_GO_DIR``).

    Raises
    ------
    ConfigError
        If no folder is given, or it lacks either file.
    """
    if go_dir is None or str(go_dir) == "":
        go_dir = os.environ.get(GO_DIR_ENV) or None
    if go_dir is None:
        raise ConfigError(f"gene_names='real_go' names the genes after the real Gene Ontology, and no GO folder "
                          f"was given: {_FIX}.")
    folder = Path(go_dir).expanduser()
    if not folder.is_dir():
        raise ConfigError(f"the GO folder {folder} does not exist: {_FIX}.")
    found = []
    for names in (OBO_NAMES, GAF_NAMES):
        path = next((folder / n for n in names if (folder / n).is_file()), None)
        if path is None:
            raise ConfigError(f"the GO folder {folder} has no {' or '.join(names)}: {_FIX}.")
        found.append(path)
    return found[0], found[1]


@dataclass(eq=False)
class RealGO:
    """The real GO files, read for naming genes (see the module docstring).

    Attributes
    ----------
    obo, gaf
        The files.
    obo_sha256, gaf_sha256
        Their checksums (a simulation records them; reusing its folder with other files is refused).
    data_version
        The ontology's ``data-version``.
    term_genes
        Biological-process term -> genes annotated to it or to an ``is_a`` descendant (valid symbols only).
    term_names
        Term -> name.
    """

    obo: Path
    gaf: Path
    obo_sha256: str
    gaf_sha256: str
    data_version: str
    term_genes: dict[str, frozenset[str]]
    term_names: dict[str, str]
    dag: Any = field(repr=False, default=None)

    def descendants(self, term: str) -> list[str]:
        """The ``is_a`` descendants of ``term`` that have genes, sorted."""
        rec = self.dag[term]
        seen: set[str] = set()
        todo = list(rec.children)
        while todo:
            child = todo.pop()
            if child.item_id in seen:
                continue
            seen.add(child.item_id)
            todo.extend(child.children)
        return sorted(t for t in seen if t in self.term_genes)

    def provenance(self) -> dict[str, Any]:
        """What a simulation records about the files (names and checksums, no paths)."""
        return {"source": "real_go", "obo": self.obo.name, "obo_sha256": self.obo_sha256, "gaf": self.gaf.name,
                "gaf_sha256": self.gaf_sha256, "ontology_version": self.data_version}


_LOADED: dict[tuple, RealGO] = {}


def load_real_go(go_dir: str | os.PathLike | None = None) -> RealGO:
    """Read the real GO files of ``go_dir`` (see :func:`go_files`) for naming genes; cached per process
    by path and checksum (reading the human annotations takes about 10 s)."""
    from knowledge.go import read_gaf, read_obo

    obo, gaf = go_files(go_dir)
    key = (str(obo.resolve()), str(gaf.resolve()), sha256_file(obo), sha256_file(gaf))
    if key in _LOADED:
        return _LOADED[key]
    dag = read_obo(obo)
    ann = read_gaf(gaf, dag, namespaces="BP", propagate=True)
    term_genes: dict[str, set[str]] = {}
    for gene, terms in ann.gene2go.items():
        if not _SYMBOL.match(gene) or gene.lower() == "ctrl":
            continue
        for t in terms:
            term_genes.setdefault(t, set()).add(gene)
    go = RealGO(obo=obo, gaf=gaf, obo_sha256=key[2], gaf_sha256=key[3], data_version=str(dag.data_version or ""),
                term_genes={t: frozenset(g) for t, g in term_genes.items()},
                term_names={t: dag[t].name for t in term_genes}, dag=dag)
    log.info("real GO: %d biological-process terms over %d genes (%s)", len(go.term_genes),
             len(set().union(*go.term_genes.values())) if go.term_genes else 0, go.data_version or "no version")
    _LOADED[key] = go
    return go


def _cap(n: int) -> int:
    return max(TERM_SIZE_FACTOR * n, MIN_TERM_CAP)


def _overlaps(genes: frozenset[str], others: list[frozenset[str]]) -> bool:
    return any(len(genes & o) > MAX_OVERLAP * min(len(genes), len(o)) for o in others)


def _pick(candidates: list[str], go: RealGO, n: int, used: set[str], chosen: list[frozenset[str]],
          taken: set[str]) -> str | None:
    """The first candidate term that fits ``n`` genes (see the module docstring)."""
    for t in candidates:
        genes = go.term_genes[t]
        if t in taken or not n <= len(genes) <= _cap(n) or len(genes - used) < n or _overlaps(genes, chosen):
            continue
        return t
    return None


def name_genes(genes: pd.DataFrame, go: RealGO, seed: int) -> pd.DataFrame:
    """Rename the genes of a network's gene table (columns ``gene``, ``module``, ``submodule``) after
    real human genes by the module docstring's rule; returns a copy with ``gene`` replaced and
    ``go_term``, ``go_subterm`` added.

    Raises
    ------
    ConfigError
        If the table has no modules, or no term is left for a module (too many or too large modules).
    """
    from priorgnn.simulate.ode import stream_rng

    if "module" not in genes or "submodule" not in genes:
        raise ConfigError("real gene names follow the simulator's modules; this network has none (hand-built?).")
    rng = stream_rng(seed, "gene_names")
    all_terms = sorted(go.term_genes)
    candidates = [all_terms[i] for i in rng.permutation(len(all_terms))]
    module = genes["module"].astype(str).to_numpy()
    sub = genes["submodule"].astype(str).to_numpy()
    sizes = pd.Series(module).value_counts()
    order = sorted(sizes.index, key=lambda m: (-sizes[m], m))
    used: set[str] = set()
    chosen: list[frozenset[str]] = []
    taken: set[str] = set()
    names = np.empty(len(genes), dtype=object)
    go_term = np.empty(len(genes), dtype=object)
    go_subterm = np.empty(len(genes), dtype=object)
    for m in order:
        n = int(sizes[m])
        term = _pick(candidates, go, n, used, chosen, taken)
        if term is None:
            raise ConfigError(
                f"no GO biological-process term of {n} to {_cap(n)} genes, mostly disjoint from the {len(taken)} "
                f"already chosen, is left for module {m} ({n} genes). Real gene names need fewer or smaller "
                "modules: lower n_genes or raise n_modules."
            )
        taken.add(term)
        chosen.append(go.term_genes[term])
        rows_m = np.nonzero(module == m)[0]
        subs = pd.Series(sub[rows_m]).value_counts()
        sub_order = sorted(subs.index, key=lambda s: (-subs[s], s))
        nested: list[str] = []
        if len(sub_order) > 1:
            desc = go.descendants(term)
            nested = [desc[i] for i in rng.permutation(len(desc))]
        others = chosen[:-1]  # a nested term lies inside the module's own term, so only the others count
        sub_chosen: list[frozenset[str]] = []
        for s in sub_order:
            k = int(subs[s])
            sub_term = _pick(nested, go, k, used, others + sub_chosen, taken) if nested else None
            if sub_term is None:
                sub_term = term
            else:
                taken.add(sub_term)
                sub_chosen.append(go.term_genes[sub_term])
            pool = sorted(go.term_genes[sub_term] - used)
            picked = [pool[i] for i in rng.choice(len(pool), size=k, replace=False)]
            used.update(picked)
            rows = rows_m[sub[rows_m] == s]
            names[rows] = picked
            go_term[rows] = term
            go_subterm[rows] = sub_term
    out = genes.copy()
    out["gene"] = names.astype(str)
    out["go_term"] = go_term.astype(str)
    out["go_subterm"] = go_subterm.astype(str)
    log.info("named %d genes after real genes of %d GO terms", len(out), len(taken))
    return out


def is_real_go(simulator) -> bool:
    """Whether a simulator's genes carry real names (its gene table has ``go_term``)."""
    return "go_term" in simulator.spec.genes


def term_table(gene_table: pd.DataFrame, go: RealGO | None = None) -> pd.DataFrame:
    """One row per module and sub-module: its term, the term's name (with ``go``) and sizes."""
    rows = []
    for level, col in (("module", "go_term"), ("submodule", "go_subterm")):
        for name, g in gene_table.groupby(level, sort=True):
            term = str(g[col].iloc[0])
            rows.append({"level": level, "key": name, "term": term, "n_genes": len(g),
                         "name": go.term_names.get(term, "") if go is not None else "",
                         "n_term_genes": len(go.term_genes.get(term, ())) if go is not None else None})
    return pd.DataFrame(rows)


def write_real_knowledge(sim_or_simulator, out_dir: str | os.PathLike, go: RealGO) -> tuple[Path, Path]:
    """Write ``go.obo`` and ``annotations.gaf`` (the real files restricted to the simulation's genes, see
    the module docstring) and ``knowledge.json`` into ``out_dir``; returns ``(obo_path, gaf_path)``."""
    from knowledge.go import subset_go_files
    from priorgnn.simulate.ontology import GAF_NAME, OBO_NAME, _simulator_of

    simulator = _simulator_of(sim_or_simulator)
    if not is_real_go(simulator):
        raise ConfigError("write_real_knowledge: this simulation has synthetic gene names; use write_knowledge.")
    out = Path(out_dir)
    version = getattr(sim_or_simulator, "config_hash", None) or "unnamed"
    note = [f"priorgnn: the annotation lines of the {simulator.n_genes} genes of simulation {version}, "
            f"unchanged, from {go.gaf.name} (sha256 {go.gaf_sha256}); the other genes' lines are left out."]
    counts = subset_go_files(go.obo, go.gaf, simulator.genes, out / OBO_NAME, out / GAF_NAME, note=note)
    terms = term_table(simulator.gene_table, go)
    write_json(out / "knowledge.json", {
        **go.provenance(), "recall": 1.0, "false_rate": 0.0, "shuffle_frac": 0.0, "simulation": version,
        "n_annotation_lines": counts["n_lines"], "n_genes_annotated": counts["n_genes"],
        "n_terms": counts["n_terms"], "terms": terms.to_dict(orient="records"),
    })
    return out / OBO_NAME, out / GAF_NAME
