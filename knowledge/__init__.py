"""Knowledge priors as gene-gene graphs: Gene Ontology, co-expression and any edge list.

Graphs are built from real sources in their real formats, cached by their inputs, and can be
degraded on purpose (for the knowledge-bias study). See :class:`knowledge.graph.GeneGraph`.

* :mod:`knowledge.go`: GO annotations (OBO + GAF through goatools, GEARS's ``gene2go_all.pkl``, a
  TSV) and the GEARS GO graph (Jaccard of GO-term sets, top-k per gene);
* :mod:`knowledge.coexpression`: the co-expression graph from a split's training cells;
* :mod:`knowledge.edgelist`: any gene-gene edge list;
* :mod:`knowledge.degrade`: seeded degradations (dropout, rewiring, label permutation, random,
  empty);
* :mod:`knowledge.cache`: graphs cached by their inputs and parameters;
* ``python -m knowledge``: the command line.

Submodules are imported on use, so ``import knowledge`` stays light.
"""

from knowledge.graph import AlignReport, GeneGraph

__all__ = ["AlignReport", "GeneGraph"]
