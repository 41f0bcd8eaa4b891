"""GO-like knowledge files of a simulation: an OBO 1.2 ontology and GAF 2.2 annotations.

(A simulation with real gene names has the real GO files instead: :mod:`priorgnn.simulate.realgo`.)

Ontology
--------
The simulated modules become biological-process terms with an ``is_a`` hierarchy
``root -> pathway-group terms -> module terms -> sub-module terms`` (namespace
``biological_process``). Identifiers are ``GO:9xxxxxx`` (root ``GO:9000000``, groups ``GO:91…``,
modules ``GO:92…``, sub-modules ``GO:93…``), a range that no real GO term uses, so simulated and
real terms cannot be confused. The ontology depends only on the module structure.

True annotations
----------------
Every gene is annotated to its sub-module's term (the most specific term, as GO curators do).
A regulator is also annotated to the module term of each other module in which it directly
regulates at least two genes (a "regulation of <process>" annotation). Consumers propagate along
``is_a`` as usual.

Fidelity
--------
Applied in this order, each a deterministic function of ``seed`` (a knowledge stream separate from
the cells):

``shuffle_frac``
    that fraction of annotated genes (rounded) have their whole annotation sets permuted among
    themselves, with no gene keeping its own set (a cyclic shift of a random order);
``recall``
    that fraction (rounded) of the resulting annotations is kept, chosen uniformly;
``false_rate``
    ``round(false_rate * n_true)`` wrong annotations are added, each a random gene paired with a
    random module or sub-module term that is neither one of its true terms nor an ancestor of one
    (an annotation to an ancestor would be true by propagation).

Evidence codes are drawn independently of correctness, so a consumer cannot tell right from wrong
annotations by their code.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from priorgnn.io import write_json, write_text
from priorgnn.errors import ConfigError

log = logging.getLogger(__name__)

__all__ = ["write_knowledge", "ontology_terms", "true_annotations", "annotations"]

ROOT_ID = "GO:9000000"
OBO_NAME = "go.obo"
GAF_NAME = "annotations.gaf"
_EVIDENCE = np.array(["IDA", "IMP", "IGI", "IEP", "ISS", "IEA"])
_EVIDENCE_P = np.array([0.25, 0.15, 0.05, 0.1, 0.15, 0.3])
_DATE = "20250101"  # fixed, so the files are a deterministic function of the simulation


def _simulator_of(obj):
    from priorgnn.simulate.ode import Simulator

    if isinstance(obj, Simulator):
        return obj
    sim = getattr(obj, "simulator", None)
    if isinstance(sim, Simulator):
        return sim
    raise ConfigError("write_knowledge needs a Simulation or a Simulator.")


def ontology_terms(gene_table: pd.DataFrame) -> pd.DataFrame:
    """The terms: ``id, name, level (root/group/module/submodule), key, parent`` (parent id)."""
    for col in ("module", "submodule", "group"):
        if col not in gene_table:
            raise ConfigError(
                "this simulator has no module annotation (hand-built network?); GO-like files need "
                "'module', 'submodule' and 'group' columns in the gene table."
            )
    rows = [{"id": ROOT_ID, "name": "simulated biological process", "level": "root", "key": "",
             "parent": ""}]
    groups = sorted(gene_table["group"].unique())
    gid = {g: f"GO:{9100000 + i + 1:07d}" for i, g in enumerate(groups)}
    for g in groups:
        rows.append({"id": gid[g], "name": f"simulated pathway group {g}", "level": "group", "key": g,
                     "parent": ROOT_ID})
    mod_group = gene_table.drop_duplicates("module").set_index("module")["group"]
    modules = sorted(mod_group.index)
    mid = {m: f"GO:{9200000 + i + 1:07d}" for i, m in enumerate(modules)}
    for m in modules:
        rows.append({"id": mid[m], "name": f"simulated process {m}", "level": "module", "key": m,
                     "parent": gid[mod_group[m]]})
    sub_mod = gene_table.drop_duplicates("submodule").set_index("submodule")["module"]
    for i, sm in enumerate(sorted(sub_mod.index)):
        rows.append({"id": f"GO:{9300000 + i + 1:07d}", "name": f"simulated process {sm}",
                     "level": "submodule", "key": sm, "parent": mid[sub_mod[sm]]})
    return pd.DataFrame(rows)


def true_annotations(simulator) -> dict[str, list[str]]:
    """``{gene: [term ids]}`` before any degradation (see the module docstring)."""
    gt = simulator.gene_table
    terms = ontology_terms(gt)
    sub_id = dict(zip(terms.loc[terms.level == "submodule", "key"], terms.loc[terms.level == "submodule", "id"]))
    mod_id = dict(zip(terms.loc[terms.level == "module", "key"], terms.loc[terms.level == "module", "id"]))
    module_of = dict(zip(gt["gene"], gt["module"]))
    out = {g: [sub_id[s]] for g, s in zip(gt["gene"], gt["submodule"])}
    net = simulator.network
    net = net.assign(tmod=net["target"].map(module_of), rmod=net["regulator"].map(module_of))
    cross = net[net["tmod"] != net["rmod"]].groupby(["regulator", "tmod"]).size()
    for (reg, mod), count in cross.items():
        if count >= 2:
            out[reg].append(mod_id[mod])
    return out


def annotations(simulator, recall: float = 1.0, false_rate: float = 0.0, shuffle_frac: float = 0.0,
                seed: int = 0) -> pd.DataFrame:
    """Annotations at the chosen fidelity: ``gene, term, evidence, true`` (``true``: the pair is a
    true annotation of that gene)."""
    for name, v in (("recall", recall), ("shuffle_frac", shuffle_frac)):
        if not 0.0 <= v <= 1.0:
            raise ConfigError(f"{name}={v} must be in [0, 1].")
    if false_rate < 0:
        raise ConfigError(f"false_rate={false_rate} must be >= 0.")
    from priorgnn.simulate.ode import stream_rng

    rng = stream_rng(seed, "knowledge")
    truth = true_annotations(simulator)
    genes = sorted(truth)
    sets = [list(truth[g]) for g in genes]
    # shuffle whole annotation sets among a subset of genes (a derangement of that subset)
    n_shuf = int(round(shuffle_frac * len(genes)))
    if n_shuf >= 2:
        chosen = rng.choice(len(genes), size=n_shuf, replace=False)
        moved = [sets[i] for i in chosen]
        for k, i in enumerate(chosen):
            sets[i] = moved[(k + 1) % n_shuf]
    pairs = [(g, t) for g, ts in zip(genes, sets) for t in ts]
    n_true = sum(len(v) for v in truth.values())
    keep = int(round(recall * len(pairs)))
    idx = np.sort(rng.choice(len(pairs), size=keep, replace=False)) if keep < len(pairs) else np.arange(len(pairs))
    pairs = [pairs[i] for i in idx]
    # false annotations: a module or sub-module term that is neither a true term of the gene nor an
    # ancestor of one (an annotation to an ancestor would be true by propagation)
    n_false = int(round(false_rate * n_true))
    if n_false:
        terms = ontology_terms(simulator.gene_table)
        cand = terms[terms.level.isin(["module", "submodule"])]
        parent = dict(zip(terms["id"], terms["parent"]))
        term_ids = cand["id"].to_numpy()
        have = {(g, t) for g, t in pairs}
        added = 0
        tries = 0
        while added < n_false and tries < 50 * n_false + 1000:
            tries += 1
            g = genes[int(rng.integers(len(genes)))]
            t = str(term_ids[int(rng.integers(len(term_ids)))])
            closure = set()
            for tt in truth[g]:
                while tt:
                    closure.add(tt)
                    tt = parent.get(tt, "")
            if t in closure or (g, t) in have:
                continue
            have.add((g, t))
            pairs.append((g, t))
            added += 1
        if added < n_false:
            log.warning("could only add %d of %d false annotations (too few wrong terms)", added, n_false)
    df = pd.DataFrame(pairs, columns=["gene", "term"])
    df["evidence"] = rng.choice(_EVIDENCE, size=len(df), p=_EVIDENCE_P) if len(df) else []
    true_set = {(g, t) for g, ts in truth.items() for t in ts}
    df["true"] = [(g, t) in true_set for g, t in zip(df["gene"], df["term"])]
    return df.sort_values(["gene", "term"], kind="stable").reset_index(drop=True)


def _obo_text(terms: pd.DataFrame, data_version: str) -> str:
    lines = [
        "format-version: 1.2",
        f"data-version: {data_version}",
        "default-namespace: biological_process",
        "ontology: priorgnn-simulated-go",
        "remark: GO-like ontology of a priorgnn simulation; ids GO:9xxxxxx are not real GO terms.",
        "",
    ]
    name_of = dict(zip(terms["id"], terms["name"]))
    for r in terms.itertuples(index=False):
        lines += ["[Term]", f"id: {r.id}", f"name: {r.name}", "namespace: biological_process",
                  f'def: "Simulated {r.level}-level process of the priorgnn mechanistic simulator." []']
        if r.parent:
            lines.append(f"is_a: {r.parent} ! {name_of[r.parent]}")
        lines.append("")
    return "\n".join(lines)


def _gaf_text(ann: pd.DataFrame, header: list[str]) -> str:
    lines = ["!gaf-version: 2.2", "!generated-by: priorgnn.simulate", f"!date-generated: {_DATE[:4]}-{_DATE[4:6]}-{_DATE[6:]}"]
    lines += [f"!{h}" for h in header]
    for g, t, ev in zip(ann["gene"], ann["term"], ann["evidence"]):
        cols = ["PRIORGNN", g, g, "involved_in", t, "PRIORGNN:simulation", ev, "", "P",
                f"simulated gene {g}", "", "protein", "taxon:32630", _DATE, "priorgnn", "", ""]
        lines.append("\t".join(cols))
    return "\n".join(lines) + "\n"


def write_knowledge(sim_or_simulator, out_dir: str | os.PathLike, recall: float = 1.0,
                    false_rate: float = 0.0, shuffle_frac: float = 0.0,
                    seed: int = 0) -> tuple[Path, Path]:
    """Write ``go.obo`` and ``annotations.gaf`` (and ``knowledge.json``) into ``out_dir``.

    Works for an existing simulation without re-simulating cells. See the module docstring for the
    fidelity knobs. Returns ``(obo_path, gaf_path)``. A simulation with real gene names
    (``gene_names="real_go"``) has the real GO files as its knowledge, written with it
    (:mod:`priorgnn.simulate.realgo`); it is refused here.
    """
    simulator = _simulator_of(sim_or_simulator)
    from priorgnn.simulate.realgo import REAL_GO_FIDELITY, is_real_go

    if is_real_go(simulator):
        raise ConfigError(REAL_GO_FIDELITY)
    out = Path(out_dir)
    terms = ontology_terms(simulator.gene_table)
    ann = annotations(simulator, recall=recall, false_rate=false_rate, shuffle_frac=shuffle_frac, seed=seed)
    params = {"recall": recall, "false_rate": false_rate, "shuffle_frac": shuffle_frac, "seed": seed}
    version = getattr(sim_or_simulator, "config_hash", None) or "unnamed"
    obo = out / OBO_NAME
    gaf = out / GAF_NAME
    write_text(obo, _obo_text(terms, f"priorgnn-simulation/{version}"))
    header = [f"simulation: {version}"] + [f"fidelity {k}: {v}" for k, v in params.items()]
    write_text(gaf, _gaf_text(ann, header))
    n_true_total = sum(len(v) for v in true_annotations(simulator).values())
    write_json(out / "knowledge.json", {
        **params, "simulation": version, "n_terms": len(terms), "n_annotations": len(ann),
        "n_true_annotations_kept": int(ann["true"].sum()), "n_true_annotations_total": n_true_total,
        "n_genes_annotated": int(ann["gene"].nunique()),
    })
    log.info("wrote %s (%d terms) and %s (%d annotations)", obo, len(terms), gaf, len(ann))
    return obo, gaf
