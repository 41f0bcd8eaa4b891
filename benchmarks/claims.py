#!/usr/bin/env python
"""Check the numbers that README.md and the results pages state against the files they come from."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class ClaimError(Exception):
    """A claim that cannot be checked (a missing file, table or column): fix the registry or the file."""


def git(root: Path, *args: str, stdin: str | None = None) -> str:
    """Output of ``git -C root ARGS`` (stripped); raises :class:`ClaimError` naming the command."""
    try:
        proc = subprocess.run(["git", "-C", str(root), *args], input=stdin, capture_output=True, text=True,
                              check=False)
    except FileNotFoundError:
        raise ClaimError("git is not installed; the claims check reads the history with git.") from None
    if proc.returncode != 0:
        raise ClaimError(f"`git {' '.join(args)}` failed in {root}: {proc.stderr.strip()}")
    return proc.stdout.strip()


def code_fingerprint(paths: Sequence[str], root: Path = ROOT) -> str:
    """A content hash of the git-tracked files under ``paths`` as they are in the working tree.

    The blob ids (``git hash-object``) of the files, with their paths, hashed together: a results
    file records it when it is produced, and the check recomputes it; any edit, addition or removal
    of a tracked file under ``paths`` changes it.
    """
    files = [f for f in git(root, "ls-files", "-z", "--", *paths).split("\0") if f and (root / f).is_file()]
    if not files:
        raise ClaimError(f"no git-tracked file under {', '.join(paths)}: fix the code paths of the claim.")
    blobs = git(root, "hash-object", "--stdin-paths", stdin="\n".join(files) + "\n").split()
    text = "\n".join(f"{f} {b}" for f, b in sorted(zip(files, blobs)))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def head_commit(root: Path = ROOT) -> str:
    """The checked-out commit (``git rev-parse HEAD``)."""
    return git(root, "rev-parse", "HEAD")
