"""benchmarks/vs_gears.py: its options, and the table logic on hand-made run records (per-step and
end-to-end ratios, memory in both modes, no verdict against an unfinished cell-gears, reference rows)."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "vs_gears.py"


@pytest.fixture(scope="module")
def vs():
    spec = importlib.util.spec_from_file_location("vs_gears", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run_dir(tmp_path: Path, name: str, fit_info: dict, timings: dict | None = None) -> Path:
    d = tmp_path / name
    d.mkdir()
    t = {"data_s": 10.0, "priors_s": 0.5, "train_s": 20.0, "predict_s": 1.0, **(timings or {})}
    (d / "run.json").write_text(json.dumps({"timings": t, "fit_info": fit_info, "git_revision": "abc"}))
    return d


def _gears_fit(steps_per_epoch: int, full: int, epochs: int, steps_s: float) -> dict:
    eps = [{"steps": steps_per_epoch, "steps_s": steps_s, "train_eval_s": 1.0, "val_s": 2.0,
            "epoch_s": steps_s + 3.0, "val_mse_de": 1.0 - 0.01 * i} for i in range(epochs)]
    return {"gears": {"epochs": eps, "steps_per_full_epoch": full, "best_epoch": epochs,
                      "seconds_to_best": sum(e["epoch_s"] for e in eps), "prepare_s": 100.0, "initialize_s": 5.0}}


def _priorgnn_fit(step_seconds, step_sizes, epochs: int) -> dict:
    per = len(step_seconds) // epochs
    return {"training": {"epochs": epochs, "global_steps": len(step_seconds), "step_seconds": step_seconds,
                         "step_sizes": step_sizes, "epoch_seconds": [sum(step_seconds[i * per:(i + 1) * per]) + 0.1
                                                                     for i in range(epochs)],
                         "best_epoch": 1, "seconds_to_best": 1.0}}


def test_per_step_time_and_ratio_from_recorded_steps(vs, tmp_path):
    # PriorGNN: steps of 32, 32 and 13 conditions took 0.5, 0.3 and 0.2 s: the full-size steps average 0.4 s.
    pg = vs.summarise_run("priorgnn_steps", 0, _run_dir(tmp_path, "p", _priorgnn_fit([0.5, 0.3, 0.2], [32, 32, 13], 1)),
                          {"maxrss_bytes": 2 * vs.GIB, "wall_s": 30.0})
    assert pg["seconds_per_step"] == pytest.approx(0.4)
    assert (pg["step_batch"], pg["step_batch_min"], pg["optimiser_steps"]) == (32, 13, 3)
    # cell-gears: 2 epochs of 40 steps, 112 s of steps each: 2.8 s per step
    ge = vs.summarise_run("gears", 0, _run_dir(tmp_path, "g", _gears_fit(40, 1461, 2, 112.0)),
                          {"maxrss_bytes": 8 * vs.GIB, "wall_s": 400.0})
    assert ge["seconds_per_step"] == pytest.approx(2.8)
    assert (ge["optimiser_steps"], ge["finished"], ge["steps_per_full_epoch"]) == (80, False, 1461)
    # the model's own preparation: GEARS's prepare + initialize; PriorGNN's fit time outside its epochs
    assert ge["model_prep_s"] == pytest.approx(105.0)
    assert pg["model_prep_s"] == pytest.approx(20.0 - 1.1)
    ps = vs.per_step([pg, ge])
    assert ps["ratio"] == pytest.approx(2.8 / 0.4)
    assert ps["ratio_per_seed"] == {0: pytest.approx(7.0)}
    assert (ps["priorgnn_batch"], ps["gears_batch"]) == (32, 32)


def _row(model, seed, **kw):
    base = {"model": model, "seed": seed, "peak_rss_gib": 1.0, "process_wall_s": 10.0, "seconds_per_step": 0.4,
            "optimiser_steps": 4, "epochs": 1, "finished": True, "steps_per_full_epoch": 4, "steps_per_epoch_run": 4,
            "step_batch": 32, "step_batch_min": 32, "step_unit": "conditions", "steps_time_s": 1.6,
            "training_s": 2.0, "best_epoch": 1, "data_prep_s": 3.0, "load_and_summaries_s": 2.0,
            "load_graphs_s": 0.1, "model_prep_s": 0.9, "curve_s": [2.0], "curve_val": [0.5], "curve_steps": [4]}
    return {**base, **kw}


def _rows(gears_epochs: int, gears_steps: int, full: int = 1461):
    rows = []
    for s in (0, 1):
        rows += [
            _row("gears", s, peak_rss_gib=7.5, process_wall_s=450.0 + s, seconds_per_step=2.8 + 0.2 * s,
                 optimiser_steps=gears_epochs * gears_steps, epochs=gears_epochs, finished=gears_steps >= full,
                 steps_per_full_epoch=full, steps_per_epoch_run=gears_steps, step_unit="cells",
                 curve_s=[300.0] * gears_epochs, curve_val=[1.0] * gears_epochs, curve_steps=[gears_steps] * gears_epochs),
            _row("priorgnn", s, peak_rss_gib=1.25),
            _row("priorgnn_default", s, process_wall_s=50.0, epochs=26, optimiser_steps=104),
            _row("priorgnn_cells", s, peak_rss_gib=3.5),
            _row("priorgnn_untrained", s, optimiser_steps=0, epochs=0, seconds_per_step=None, step_batch=0,
                 step_batch_min=0, curve_s=[], curve_val=[], curve_steps=[]),
            _row("priorgnn_steps", s, seconds_per_step=0.4, optimiser_steps=60, epochs=20),
        ]
    return rows


def _accuracy():
    models = {"priorgnn": 0.50, "priorgnn_default": 0.52, "priorgnn_untrained": 0.40, "gears": 0.45,
              "no_change": 0.0, "additive": 0.42}
    mean, sd = {}, {}
    for m, v in models.items():
        for sub in (*("unseen_single", "combo_seen0", "combo_seen1", "combo_seen2"), "all"):
            for met in ("pearson_delta", "pearson_delta_excl_target", "mse_top20_de"):
                mean[(m, sub, met)] = v if met != "mse_top20_de" else 1 - v
                sd[(m, sub, met)] = 0.01
    # cell-gears ahead on unseen_single off the target
    mean[("gears", "unseen_single", "pearson_delta_excl_target")] = 0.60
    return mean, sd


def _summary(vs, rows):
    graphs = {"wall_s": 100.0, "n_cells": 1000, "n_genes": 50, "n_conditions": {"train": 109, "val": 22, "test": 106},
              "data": "sim", "load_s": 1.0, "go_read_s": 0.1, "go_build_s": 0.1, "coexpression_s": 1.0}
    setup = {"data": "sim", "command": "python benchmarks/vs_gears.py", "seeds": [0, 1], "epochs": 1, "gears_steps": 40,
             "step_epochs": 20, "batch_size": 32, "hidden": 64, "threads": 1, "accelerator": "cpu", "go_edges": 10,
             "coexpression_edges": 5, "graphs": {**graphs, "maxrss_gib": 2.0}, "git_commit": "abc",
             "code_fingerprint": "f00"}
    mean, sd = _accuracy()
    return vs.build_summary(rows, mean, sd, {"unseen_single": 27}, graphs, setup)


def _markdown(vs, summary, rows):
    machine = {"cpu": "cpu", "cores": 2, "memory_bytes": 2 ** 34, "gpu": None, "platform": "linux", "python": "3.11",
               "versions": {}}
    t = {"time": "now", "load": "1 1 1"}
    return vs.render_markdown(summary, rows, machine, t, t)


def test_step_capped_cell_gears_gets_no_verdict_and_a_lower_bound(vs):
    rows = _rows(gears_epochs=1, gears_steps=40)
    s = _summary(vs, rows)
    assert s["gears_finished"] is False
    assert s["accuracy_verdict"]["verdict"] is None and "40 of 1,461 steps" in s["accuracy_verdict"]["reason"]
    e2e = s["end_to_end"]
    # graphs (100 s) + process: cell-gears 450.5 s, PriorGNN's default schedule 50 s
    assert e2e["ratio"] == pytest.approx(550.5 / 150.0) and e2e["ratio_is_lower_bound"]
    md = _markdown(vs, s, rows)
    assert "No verdict against cell-gears" in md
    assert "PASS" not in md and "MISSED" not in md
    assert "cell-gears (40 of 1,461 steps, 1 epoch)" in md  # columns say what ran
    assert "≥ 3.7×" in md and "lower bound" in md


def test_no_per_epoch_ratio_anywhere(vs):
    rows = _rows(gears_epochs=1, gears_steps=40)
    md = _markdown(vs, _summary(vs, rows), rows)
    assert not re.search(r"(time|seconds|faster|slower|speed(-?up)?) per (training )?epoch", md, re.IGNORECASE)
    assert not re.search(r"epoch time|per-epoch (speed|ratio|time)", md, re.IGNORECASE)
    for line in md.splitlines():  # no ratio is stated per epoch
        if "×" in line and line.startswith("|"):
            assert "per epoch" not in line.split("|")[1]
    speed = md.split("## Speed")[1].split("\n## ")[0]
    labels = [line.split("|")[1] for line in speed.splitlines() if line.startswith("| ") and "×" in line]
    assert labels and not any("epoch" in lab for lab in labels)
    # the per-step ratio is the recorded step times' ratio: 2.9 s (mean of 2.8 and 3.0) / 0.4 s
    assert "**7.2×**" in speed


def test_finished_cell_gears_gets_a_verdict_per_subgroup_on_its_headline_metric(vs):
    rows = _rows(gears_epochs=20, gears_steps=98, full=98)
    s = _summary(vs, rows)
    assert s["gears_finished"] and not s["end_to_end"]["ratio_is_lower_bound"]
    v = s["accuracy_verdict"]["verdict"]
    # unseen subgroups judged off the perturbed genes, where cell-gears (0.60) is ahead of PriorGNN (0.52)
    assert v["unseen_single"] == {"metric": "pearson_delta_excl_target", "priorgnn": 0.52, "gears": 0.60,
                                  "at_least_equal": False}
    assert v["combo_seen0"]["at_least_equal"] and v["combo_seen1"]["metric"] == "pearson_delta"
    md = _markdown(vs, s, rows)
    assert "unseen_single MISSED" in md and "combo_seen0 PASS" in md


def test_reference_rows_and_both_memory_modes(vs):
    rows = _rows(gears_epochs=1, gears_steps=40)
    s = _summary(vs, rows)
    md = _markdown(vs, s, rows)
    head = next(line for line in md.splitlines() if line.startswith("| subgroup | metric |"))
    assert "PriorGNN untrained" in head and "no_change" in head
    assert s["accuracy"]["priorgnn_untrained"]["all"]["pearson_delta"]["mean"] == 0.40
    mem = s["memory"]
    assert mem["summaries_only"]["ratio"] == pytest.approx(1.25 / 7.5) and mem["summaries_only"]["met"]
    assert mem["cells_loaded"]["ratio"] == pytest.approx(3.5 / 7.5) and not mem["cells_loaded"]["met"]
    assert "`--summaries-only`" in md and "cells loaded" in md and "**not met**" in md


def test_steps_split_cuts_training_to_whole_batches(vs, tmp_path):
    from priorgnn.data.splits import Split

    train = ["ctrl"] + [f"G{i}+ctrl" for i in range(108)]
    Split("simulation", 1, train, ["V+ctrl"], ["T+ctrl"]).save(tmp_path / "split.json")
    assert vs.steps_split(tmp_path / "split.json", 32, tmp_path / "cut.json") == 96
    cut = Split.load(tmp_path / "cut.json")
    assert len(cut.train) == 96 and "ctrl" in cut.train and cut.val == ["V+ctrl"]
    # every condition stays in one set (the data's conditions must all be placed): the 13 left out are tested
    assert set(cut.test) == {"T+ctrl"} | (set(train) - set(cut.train)) and len(cut.test) == 14
    cut.check(train + ["V+ctrl", "T+ctrl"])
    Split("simulation", 1, train[:20], ["V+ctrl"], ["T+ctrl"]).save(tmp_path / "small.json")
    assert vs.steps_split(tmp_path / "small.json", 32, tmp_path / "cut2.json") == 20


def test_options_and_quick_defaults(vs):
    args = vs.parse_args(["--quick"])
    assert (args.data, args.seed_list, args.epochs, args.gears_steps) == ("demo", [0], 2, 5)
    args = vs.parse_args(["--seeds", "0,1,2", "--epochs", "4", "--gears-steps", "0", "--accelerator", "gpu"])
    assert (args.data, args.seed_list, args.epochs, args.gears_steps, args.accelerator) == ("norman", [0, 1, 2], 4, 0, "gpu")
    assert args.results.endswith("benchmarks/results")
    cmd = vs.train_command(args, "priorgnn_untrained", 0, Path("r"))
    assert "--untrained" in cmd and "--summaries-only" in cmd and cmd[cmd.index("--accelerator") + 1] == "gpu"
    assert "--summaries-only" not in vs.train_command(args, "priorgnn_cells", 0, Path("r"))


def test_help_runs():
    out = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    assert "--gears-steps" in out.stdout and "--quick" in out.stdout and "--accelerator" in out.stdout


def test_runs_of_other_code_are_not_reused_but_cell_gears_runs_are(vs):
    now = "f" * 16
    assert vs.reusable({"code_fingerprint": now}, vs.PRIORGNN, now) == (True, "")
    ok, why = vs.reusable({"code_fingerprint": "0" * 16}, vs.PRIORGNN, now)
    assert not ok and "0" * 16 in why and now in why
    ok, why = vs.reusable({}, vs.UNTRAINED_LABEL, now)  # measured before runs recorded their code
    assert not ok and "before" in why
    # cell-gears trains with its own code: reused whatever code of ours prepared it
    assert vs.reusable({"code_fingerprint": "0" * 16}, vs.GEARS, now) == (True, "")
    assert vs.reusable({}, vs.GEARS, now) == (True, "")
