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
