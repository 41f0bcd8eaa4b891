"""One test per case of the bad-input catalogue (see benchmarks/robustness_cases.py)."""

from __future__ import annotations

import pytest

from robustness_cases import CASES, run_case


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_gives_one_clear_error_and_loses_nothing(case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = run_case(case, tmp_path)
    assert not out.traceback, out.message
    assert out.status == case.status, out.message
    assert case.expect in out.message, out.message
    assert not out.data_loss, out.data_loss


def test_condition_names_cannot_escape_the_output_folder(tmp_path, monkeypatch):
    import train
    from robustness_cases import _trained_run

    monkeypatch.chdir(tmp_path)
    run = _trained_run(tmp_path, "additive")
    assert train.main(["predict", str(run), "--conditions", "G1+G2", "--name", "../../escaped", "-q"]) == 0
    assert not list(tmp_path.parent.glob("escaped*")) and not list(tmp_path.glob("escaped*"))
    written = list((run / "predictions").glob("*escaped*.h5ad"))
    assert len(written) == 1 and written[0].parent == run / "predictions"
