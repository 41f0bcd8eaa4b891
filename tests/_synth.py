"""The tests' synthetic data, from :mod:`priorgnn.testing` (shared with ``benchmarks/robustness.py``)."""

from priorgnn.testing import lognorm_h5ad, ring_graph, small_prior_data, synth_counts, synth_lognorm

__all__ = ["synth_counts", "synth_lognorm", "lognorm_h5ad", "ring_graph", "small_prior_data"]
