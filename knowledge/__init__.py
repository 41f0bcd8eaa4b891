"""Knowledge priors as gene-gene graphs: Gene Ontology, co-expression and any edge list.

Graphs are built from real sources in their real formats, cached by their inputs, and can be
degraded on purpose (for the knowledge-bias study). See :class:`knowledge.graph.GeneGraph`.
"""

from knowledge.graph import AlignReport, GeneGraph

__all__ = ["AlignReport", "GeneGraph"]
