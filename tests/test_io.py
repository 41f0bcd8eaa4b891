"""``priorgnn.io.replace_dir``: the one folder swap of training runs and data-set downloads."""

from __future__ import annotations

import pytest

from priorgnn import _io, io


def test_replace_dir_swaps_and_removes_the_earlier_folder(tmp_path):
    target, new = tmp_path / "run", tmp_path / ".run.partial"
    target.mkdir()
    (target / "old.txt").write_text("old")
    new.mkdir()
    (new / "new.txt").write_text("new")
    io.replace_dir(new, target)
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no leftover of the earlier folder


def test_replace_dir_puts_the_earlier_folder_back_when_the_swap_fails(tmp_path):
    target = tmp_path / "run"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(FileNotFoundError):
        io.replace_dir(tmp_path / "missing", target)
    assert (target / "old.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_replace_dir_into_a_new_place(tmp_path):
    new = tmp_path / "work"
    new.mkdir()
    (new / "a").write_text("1")
    io.replace_dir(new, tmp_path / "out")
    assert (tmp_path / "out" / "a").read_text() == "1" and not new.exists()


def test_former_private_name_re_exports_the_public_one():
    assert _io.write_json is io.write_json and _io.atomic_path is io.atomic_path
    assert not hasattr(io, "safe_join")  # removed: nothing used it


def _adata():
    import anndata as ad
    import numpy as np
    import pandas as pd
    import scipy.sparse as sp

    X = sp.random(40, 25, density=0.2, format="csr", dtype=np.float32, random_state=0)
    obs = pd.DataFrame(index=[f"c{i}" for i in range(40)])
    var = pd.DataFrame(index=[f"g{i}" for i in range(25)])
    return ad.AnnData(X=X, obs=obs, var=var, layers={"dense": np.zeros((40, 25), dtype=np.float64)})


def test_h5ad_nbytes_counts_the_matrices_by_hand():
    a = _adata()
    X = a.X
    # CSR: float32 data (4 B) and int32 indices (4 B) per non-zero, 41 index pointers; the dense layer 8 B
    matrices = X.nnz * 4 + X.nnz * X.indices.itemsize + 41 * X.indptr.itemsize + 40 * 25 * 8
    tables = int(a.obs.memory_usage(index=True, deep=True).sum() + a.var.memory_usage(index=True, deep=True).sum())
    assert io.h5ad_nbytes(a) == matrices + tables


def test_write_h5ad_refuses_a_disk_without_room_and_leaves_nothing(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _p: usage(10**9, 10**9 - 100, 100))
    from priorgnn.errors import OutputError

    with pytest.raises(OutputError) as exc:
        io.write_h5ad(tmp_path / "d.h5ad", _adata())
    assert "free" in str(exc.value) and "another disk" in str(exc.value)
    assert list(tmp_path.iterdir()) == []  # no file, no temporary left


def test_write_h5ad_writes_when_there_is_room(tmp_path):
    import anndata as ad

    io.write_h5ad(tmp_path / "sub" / "d.h5ad", _adata())
    back = ad.read_h5ad(tmp_path / "sub" / "d.h5ad")
    assert back.shape == (40, 25) and back.X.nnz == _adata().X.nnz


@pytest.mark.parametrize("kind", ["dangling_link", "file"])
def test_writers_refuse_an_output_folder_that_cannot_be_made(tmp_path, kind):
    from priorgnn.errors import OutputError

    out = tmp_path / "out"
    if kind == "dangling_link":
        out.symlink_to(tmp_path / "missing")
        expected = "symbolic link"
    else:
        out.write_text("x")
        expected = "not a folder"
    for write in (lambda: io.write_text(out / "a.txt", "hi"), lambda: io.write_h5ad(out / "d.h5ad", _adata()),
                  lambda: io.write_json(out / "deep" / "a.json", {})):
        with pytest.raises(OutputError, match=expected):
            write()
    assert not (tmp_path / "missing").exists()
