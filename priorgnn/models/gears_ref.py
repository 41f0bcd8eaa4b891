"""The reference GEARS (PyPI ``cell-gears`` 0.1.2; Roohani et al., Nature Biotechnology 2023) as a
registered model, run on our data, split and prior graphs (install with ``pip install '.[reference]'``).

What the adapter does:

* converts the data to GEARS's form (``obs['condition']``, ``obs['cell_type']``, ``var['gene_name']``)
  and lets GEARS's own code compute its DE genes and cell graphs (``get_DE_genes``,
  ``get_dropout_non_zero_genes``, ``PertData.create_dataset_file``), so its data preparation is
  GEARS's;
* builds ``PertData`` without its constructor, which would download ``gene2go_all.pkl``; the
  perturbation vocabulary is the GO graph's genes plus the data's perturbed genes, as for PriorGNN;
* passes our split (``set2conditions``) and our GO and co-expression graphs to
  ``model_initialize(G_go=..., G_coexpress=...)``, so nothing is downloaded and both models see the
  same prior;
* trains with GEARS's own ``GEARS.train`` (its loss, optimiser, per-epoch learning-rate halving and
  best-validation selection). Its end-of-training test pass is skipped (the test loader is removed
  before training): evaluate.py scores the predictions instead.

**Step budget.** ``steps_per_epoch=N`` limits each epoch to the first ``N`` batches of GEARS's
shuffled training loader (its per-epoch evaluation of the training set then also covers those ``N``
batches; validation stays complete). At ``norman`` scale a full GEARS epoch is ~2,800 steps of 32
cells, too slow for a CPU benchmark; ``fit_info['gears']`` records the time of each part of each epoch
(training steps, GEARS's training-set evaluation, validation) and the full epoch's step count, so
benchmarks can extrapolate a full epoch's time, and the best epoch and the time to it.

**The scipy >= 1.15 workaround.** ``GEARS.__init__`` (``gears.py`` line 87) indexes the sparse
expression matrix with a pandas boolean Series, which scipy >= 1.15 refuses. For the duration of that
constructor only, ``adata.X`` is a CSR subclass that converts a Series index to a NumPy array;
nothing else is changed.

Prediction: in evaluation mode a GEARS network adds the control cell ``x`` only at its output
(``out = f(perturbation) + x``), so the predicted change is ``f(perturbation)``, computed once per
condition with ``x`` set to the control mean (GEARS's ``predict`` averages the same quantity over 300
sampled control cells).
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from priorgnn.data.conditions import CTRL, parse_condition
from priorgnn.errors import ConfigError, GraphError, PriorGNNError
from priorgnn.models.base import PerturbationModel, PriorGraphs, TrainConfig, register_model

log = logging.getLogger(__name__)

__all__ = ["GEARSReference", "to_gears_adata", "scipy_series_index_workaround"]


def _import_gears():
    try:
        import gears  # noqa: F401
        from gears import GEARS, PertData
        from gears.data_utils import get_DE_genes, get_dropout_non_zero_genes
        from gears.model import GEARS_Model
    except ImportError as exc:
        raise PriorGNNError(
            f"the reference GEARS is not installed ({exc}). Install it with: pip install '.[reference]'"
        ) from None
    return GEARS, PertData, get_DE_genes, get_dropout_non_zero_genes, GEARS_Model


class _SeriesIndexCSR(sp.csr_matrix):
    """CSR matrix that accepts a pandas boolean Series as a row index (as scipy < 1.15 did)."""

    def __getitem__(self, key):
        if isinstance(key, pd.Series):
            key = key.to_numpy()
        return super().__getitem__(key)


@contextlib.contextmanager
def scipy_series_index_workaround(adata) -> Iterator[None]:
    """Within the block, ``adata.X[pandas_series]`` works on scipy >= 1.15; restored afterwards."""
    original = adata.X
    adata.X = _SeriesIndexCSR(original)
    try:
        yield
    finally:
        adata.X = original


def to_gears_adata(data):
    """The data in GEARS's layout (condition, cell_type, gene_name), with GEARS's DE annotations."""
    import anndata as ad

    _, _, get_DE_genes, get_dropout_non_zero_genes, _ = _import_gears()
    obs = pd.DataFrame({"condition": data.cell_conditions, "cell_type": "cell"}, index=data.adata.obs_names)
    var = pd.DataFrame({"gene_name": list(data.genes)}, index=list(data.genes))
    a = ad.AnnData(X=sp.csr_matrix(data.X), obs=obs, var=var)
    a = get_DE_genes(a, skip_calc_de=False)
    return get_dropout_non_zero_genes(a)


def _device(accelerator: str) -> str:
    """GEARS's torch device for a Lightning accelerator name (``cpu``, ``gpu``/``cuda``, ``auto``)."""
    acc = str(accelerator).lower()
    if acc in ("gpu", "cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"gears: accelerator {accelerator!r} asked for, but torch sees no CUDA device; "
                              "use --accelerator cpu.")
        return "cuda"
    if acc == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if acc != "cpu":
        raise ConfigError(f"gears: accelerator must be cpu, gpu or auto, not {accelerator!r}.")
    return "cpu"


class _StepBudget:
    """A GEARS training loader cut to its first ``steps`` batches per pass (all of them if ``None``),
    which records when each training pass starts and ends."""

    def __init__(self, loader, steps: int | None, clock: _EpochClock) -> None:
        self.loader, self.steps, self.clock = loader, steps, clock

    def __len__(self) -> int:
        return len(self.loader) if self.steps is None else min(self.steps, len(self.loader))

    def __iter__(self):
        training = not self.clock.evaluating
        if training:
            self.clock.start_epoch()
        n = 0
        for batch in self.loader:
            if self.steps is not None and n >= self.steps:
                break
            n += 1
            yield batch
        if training:
            self.clock.end_steps(n)


class _EpochClock:
    """Times the parts of each ``GEARS.train`` epoch and records its validation scores, by wrapping the
    ``evaluate`` and ``compute_metrics`` names that ``gears.gears`` calls (restored afterwards)."""

    def __init__(self) -> None:
        self.evaluating = False
        self.epochs: list[dict[str, float]] = []
        self._t0 = None

    def start_epoch(self) -> None:
        self._t0 = time.perf_counter()
        self.epochs.append({"steps": 0, "steps_s": 0.0, "train_eval_s": 0.0, "val_s": 0.0})

    def end_steps(self, steps: int) -> None:
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()  # the last steps' kernels count in the steps' time
        self.epochs[-1].update(steps=steps, steps_s=time.perf_counter() - self._t0)

    @contextlib.contextmanager
    def observe(self, module, train_loader) -> Iterator[None]:
        # Each epoch GEARS calls evaluate(train), evaluate(val), then compute_metrics on the train
        # results and compute_metrics on the validation results, in that order.
        evaluate, compute_metrics = module.evaluate, module.compute_metrics
        parts: dict[int, str] = {}  # id(results) -> the part it belongs to

        def timed_evaluate(loader, *a, **k):
            part = "train_eval_s" if loader is train_loader else "val_s"
            t = time.perf_counter()
            self.evaluating = True
            try:
                res = evaluate(loader, *a, **k)
            finally:
                self.evaluating = False
            if self.epochs:
                self.epochs[-1][part] += time.perf_counter() - t
            parts[id(res)] = part
            return res

        def observed_metrics(results, *a, **k):
            t = time.perf_counter()
            out = compute_metrics(results, *a, **k)
            part = parts.pop(id(results), None)
            if self.epochs and part:
                ep = self.epochs[-1]
                ep[part] += time.perf_counter() - t
                if part == "val_s":
                    ep["val_mse_de"] = float(out[0]["mse_de"])
                    ep["epoch_s"] = time.perf_counter() - self._t0
            return out

        module.evaluate, module.compute_metrics = timed_evaluate, observed_metrics
        try:
            yield
        finally:
            module.evaluate, module.compute_metrics = evaluate, compute_metrics

    def summary(self, full_steps: int) -> dict:
        scores = [(e["val_mse_de"], i) for i, e in enumerate(self.epochs) if "val_mse_de" in e]
        best = min(scores)[1] if scores else None  # GEARS keeps the first epoch with the lowest val mse_de
        return {"epochs": [{k: round(v, 4) if isinstance(v, float) else v for k, v in e.items()}
                           for e in self.epochs],
                "steps_per_full_epoch": int(full_steps),
                "best_epoch": None if best is None else best + 1,
                "seconds_to_best": None if best is None else round(
                    sum(e.get("epoch_s", 0.0) for e in self.epochs[:best + 1]), 4)}


def _data_list(x: torch.Tensor, perts: list[list[int]]):
    from torch_geometric.data import Batch, Data

    return Batch.from_data_list([Data(x=x, pert_idx=p if p else [-1]) for p in perts])


@register_model("gears")
class GEARSReference(PerturbationModel):
    """cell-gears on our data, split and priors (see the module docstring).

    Hyperparameters: ``hidden`` (64), ``epochs`` (20, GEARS's default), ``direction_lambda`` (0.1),
    ``steps_per_epoch`` (``None``: full epochs; see the module docstring); batch size, learning rate,
    weight decay and seed come from the training config.
    """

    trainable = True
    uses_priors = ("go", "coexpression")
    needs_cells = True  # GEARS trains on single cells

    def __init__(self, hidden: int = 64, epochs: int = 20, direction_lambda: float = 0.1,
                 steps_per_epoch: int | None = None, **kw) -> None:
        if epochs < 1:
            raise ConfigError("gears: epochs must be >= 1.")
        if steps_per_epoch is not None and int(steps_per_epoch) < 1:
            raise ConfigError("gears: steps_per_epoch must be >= 1 (or unset for full epochs).")
        super().__init__(hidden=hidden, epochs=epochs, direction_lambda=direction_lambda,
                         steps_per_epoch=None if steps_per_epoch is None else int(steps_per_epoch), **kw)
        self.model = None

    def prepare(self, data, split, graphs: PriorGraphs, batch_size: int, workdir: str):
        """GEARS's data preparation on our data: returns the ``PertData`` object (timed by benchmarks)."""
        _, PertData, _, _, _ = _import_gears()
        if graphs is None or graphs.go is None or graphs.coexpression is None:
            raise GraphError("gears needs both a GO and a co-expression graph (as GEARS builds them).")
        adata = to_gears_adata(data)
        pert_names = np.array(sorted(set(graphs.go.genes) | set(data.perturbed_genes)))
        pd_ = PertData.__new__(PertData)  # its constructor downloads gene2go_all.pkl
        pd_.data_path = workdir
        pd_.default_pert_graph = False
        pd_.gene_set_path = None
        pd_.dataset_name = data.name
        pd_.dataset_path = workdir
        pd_.adata = adata
        pd_.gene2go = {}
        pd_.pert_names = pert_names
        pd_.node_map_pert = {g: i for i, g in enumerate(pert_names)}
        pd_.ctrl_adata = adata[adata.obs["condition"] == CTRL]
        pd_.gene_names = adata.var.gene_name
        pd_.node_map = {g: i for i, g in enumerate(adata.var.gene_name)}
        pd_.split = "custom"  # GEARS's subgroup report is done by evaluate.py instead
        pd_.seed = 0
        pd_.subgroup = None
        pd_.train_gene_set_size = None
        pd_.create_dataset_file()
        pd_.set2conditions = {"train": list(split.train), "val": list(split.val), "test": list(split.test)}
        pd_.get_dataloader(batch_size=batch_size)
        return pd_

    def _graph_tensors(self, graphs: PriorGraphs, pert_names, genes):
        go, _ = graphs.go.align(list(pert_names), self_loops=True)
        coex, _ = graphs.coexpression.align(list(genes), self_loops=True)
        return go.to_torch() + coex.to_torch()

    def fit(self, data, split, *, graphs=None, train: TrainConfig | None = None):
        GEARS, _, _, _, _ = _import_gears()
        import gears.gears as gears_module

        from priorgnn.training.fit import cpu_threads

        train = train or TrainConfig()
        if train.untrained:
            raise ConfigError("gears: the reference GEARS runs its own training loop and has no untrained "
                              "mode; drop --untrained for it.")
        torch.set_num_threads(cpu_threads(train.threads))
        torch.manual_seed(train.seed)
        np.random.seed(train.seed)
        device = _device(train.accelerator)
        self._remember_data(data, split)
        timings = {}
        with tempfile.TemporaryDirectory(prefix="priorgnn-gears-") as work:
            t = time.perf_counter()
            pert_data = self.prepare(data, split, graphs, train.batch_size, work)
            timings["prepare_s"] = time.perf_counter() - t
            t = time.perf_counter()
            with scipy_series_index_workaround(pert_data.adata):
                g = GEARS(pert_data, device=device)
            go_i, go_w, co_i, co_w = self._graph_tensors(graphs, pert_data.pert_names, data.genes)
            g.model_initialize(hidden_size=self.hparams["hidden"], direction_lambda=self.hparams["direction_lambda"],
                               G_go=go_i, G_go_weight=go_w, G_coexpress=co_i, G_coexpress_weight=co_w)
            timings["initialize_s"] = time.perf_counter() - t
            g.dataloader.pop("test_loader", None)  # evaluate.py scores the test conditions
            clock = _EpochClock()
            loader = g.dataloader["train_loader"]
            budget = _StepBudget(loader, self.hparams.get("steps_per_epoch"), clock)
            g.dataloader["train_loader"] = budget
            t = time.perf_counter()
            with clock.observe(gears_module, budget):
                g.train(epochs=self.hparams["epochs"], lr=train.lr, weight_decay=train.weight_decay)
            timings["train_s"] = time.perf_counter() - t
            self.fit_info["gears"] = {**clock.summary(len(loader)), **{k: round(v, 4) for k, v in timings.items()},
                                      "threads": torch.get_num_threads()}
            self.pert_names = list(map(str, pert_data.pert_names))
            self._config = {k: g.config[k] for k in ("hidden_size", "num_go_gnn_layers", "num_gene_gnn_layers",
                                                     "decoder_hidden_size", "uncertainty", "no_perturb")}
            self._graphs = (go_i, go_w, co_i, co_w)
            if device == "cpu":
                self.model = g.best_model.cpu().eval()
            else:  # GEARS keeps its graphs as plain tensors on its device: rebuild the network on the CPU
                self.model = self._cpu_network({k: v.cpu() for k, v in g.best_model.state_dict().items()})
        return self

    def _cpu_network(self, state_dict):
        _, _, _, _, GEARS_Model = _import_gears()
        args = {**self._config, "num_genes": len(self.genes), "num_perts": len(self.pert_names), "device": "cpu",
                "G_go": self._graphs[0], "G_go_weight": self._graphs[1].float(),
                "G_coexpress": self._graphs[2], "G_coexpress_weight": self._graphs[3].float()}
        model = GEARS_Model(args)
        model.load_state_dict(state_dict)
        return model.eval()

    def predict_delta(self, conditions: Sequence[str]) -> np.ndarray:
        self._check_fitted()
        index = {g: i for i, g in enumerate(self.pert_names)}
        perts = []
        for c in conditions:
            genes = parse_condition(c)
            missing = [g for g in genes if g not in index]
            if missing:
                raise GraphError(f"gears cannot predict {c!r}: {missing} not in its perturbation graph.")
            perts.append([index[g] for g in genes])
        x = torch.as_tensor(self.control_mean, dtype=torch.float32)[:, None]
        out = np.zeros((len(conditions), len(self.genes)))
        with torch.no_grad():
            for start in range(0, len(conditions), 32):
                chunk = perts[start:start + 32]
                batch = _data_list(x, chunk)
                pred = self.model(batch).numpy()
                out[start:start + len(chunk)] = pred - self.control_mean[None, :]
        for i, c in enumerate(conditions):
            if not parse_condition(c):
                out[i] = 0.0
        return out

    # -- persistence ---------------------------------------------------------------------------------
    def _state(self):
        go_i, go_w, co_i, co_w = self._graphs
        return {"pert_names": np.array(self.pert_names, dtype=str), "go_index": go_i.numpy(),
                "go_weight": go_w.numpy(), "coex_index": co_i.numpy(), "coex_weight": co_w.numpy()}

    def save(self, directory):
        from priorgnn.io import atomic_path, write_json

        directory = super().save(directory)
        with atomic_path(Path(directory) / "weights.pt", ".pt") as tmp:
            torch.save(self.model.state_dict(), tmp)
        write_json(Path(directory) / "gears_config.json", self._config)
        return directory

    def _load_state(self, arrays, directory):
        from priorgnn.io import read_json

        self.pert_names = [str(g) for g in arrays["pert_names"]]
        self._graphs = tuple(torch.as_tensor(arrays[k]) for k in ("go_index", "go_weight", "coex_index",
                                                                  "coex_weight"))
        self._config = read_json(Path(directory) / "gears_config.json")
        self.model = self._cpu_network(torch.load(Path(directory) / "weights.pt", map_location="cpu",
                                                  weights_only=True))
