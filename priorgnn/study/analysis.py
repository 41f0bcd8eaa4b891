"""The study's numbers and tables: small numeric helpers (average precision, cosine and Jaccard
similarity, Spearman correlation), the layout of the cell tables on disk and their reading.

Imports no runner and no report; the report reads what :func:`read_tables` returns.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from priorgnn.errors import ConfigError
from priorgnn.io import read_json, safe_name
from priorgnn.study.grid import Grid, Setting

__all__ = ["average_precision", "read_tables", "cell_dir", "cell_stem"]


# -- small pure helpers ------------------------------------------------------------------------------
def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """Average precision (area under the precision-recall curve, step-wise): the mean over positives
    of the precision at the score threshold that admits them. Tied scores form one threshold, so a
    constant score gives exactly the positive rate. NaN without positives."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=bool)
    n_pos = int(labels.sum())
    if n_pos == 0 or scores.size == 0:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    tp = np.cumsum(y)
    # the last index of each group of tied scores is a threshold
    last = np.r_[np.nonzero(np.diff(s))[0], s.size - 1]
    tp_t = tp[last].astype(np.float64)
    precision = tp_t / (last + 1)
    recall_gain = np.diff(np.r_[0.0, tp_t]) / n_pos
    return float(np.sum(precision * recall_gain))


def _upper(m: np.ndarray) -> np.ndarray:
    return m[np.triu_indices(m.shape[0], k=1)]


def _cosine(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    n[n == 0] = 1.0
    y = x / n
    return y @ y.T


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.ptp(a[ok]) == 0 or np.ptp(b[ok]) == 0:
        return float("nan")
    return float(spearmanr(a[ok], b[ok]).statistic)


# -- the cell tables on disk --------------------------------------------------------------------------
def cell_dir(out: Path, setting: Setting) -> Path:
    """The folder of a setting's cell tables."""
    return out / "cells" / safe_name(setting.name)


def cell_stem(label: str, seed: int) -> str:
    """The file stem of one fit's tables (model label and seed)."""
    return f"{safe_name(label)}_s{seed}"


def read_tables(out: Path, grid: Grid) -> dict[str, pd.DataFrame]:
    """Every finished cell's tables in ``out``, concatenated (``metrics``, ``causal``, ``gi``, ``latent``,
    ``fits``), and the fits still missing (``missing``, ``missing_fits``)."""
    frames: dict[str, list[pd.DataFrame]] = {"metrics": [], "causal": [], "gi": [], "latent": []}
    infos = []
    missing = []
    for setting in grid.settings():
        d = cell_dir(out, setting)
        for seed in grid.seeds:
            stems = [(None, f"_reference_s{seed}")] + [(m, cell_stem(m, seed)) for m in setting.models]
            for label, stem in stems:
                if not (d / f"{stem}.csv").exists():
                    if label is not None:
                        missing.append({"setting": setting.name, "model": label, "seed": seed})
                    continue
                frames["metrics"].append(pd.read_csv(d / f"{stem}.csv"))
                for name in ("causal", "gi", "latent"):
                    p = d / f"{stem}.{name}.csv"
                    if p.exists():
                        frames[name].append(pd.read_csv(p))
                if not stem.startswith("_"):
                    infos.append({**read_json(d / f"{stem}.json"), "setting": setting.name, "seed": seed})
    if not frames["metrics"]:
        raise ConfigError(f"{out} holds no study results yet; run the study first.")
    tables = {k: (pd.concat(v, ignore_index=True) if v else pd.DataFrame()) for k, v in frames.items()}
    tables["fits"] = pd.DataFrame(infos)
    tables["missing"] = pd.DataFrame({"n": [len(missing)]})
    tables["missing_fits"] = pd.DataFrame(missing, columns=["setting", "model", "seed"])
    return tables
