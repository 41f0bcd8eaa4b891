"""Data layer: loading and validation, preprocessing, per-condition summaries and splits."""

from priorgnn.data.conditions import CTRL, canonical_condition, condition_kind, make_condition, parse_condition
from priorgnn.data.dataset import ConditionSummaries, PerturbationData
from priorgnn.data.io import from_anndata, load_dataset, preprocess, read_h5ad, scperturb_to_gears
from priorgnn.data.splits import SUBGROUPS, Split, assign_subgroups, make_split

__all__ = [
    "CTRL",
    "SUBGROUPS",
    "ConditionSummaries",
    "PerturbationData",
    "Split",
    "assign_subgroups",
    "canonical_condition",
    "condition_kind",
    "from_anndata",
    "load_dataset",
    "make_condition",
    "make_split",
    "parse_condition",
    "preprocess",
    "read_h5ad",
    "scperturb_to_gears",
]
