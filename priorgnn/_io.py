"""Former name of :mod:`priorgnn.io`, kept so that older imports keep working; import ``priorgnn.io``."""

from priorgnn.io import (  # noqa: F401 - re-exported
    atomic_path,
    atomic_write,
    hash_arrays,
    read_json,
    replace_dir,
    safe_name,
    save_figure,
    sha256_bytes,
    sha256_file,
    write_csv,
    write_h5ad,
    write_json,
    write_text,
)

__all__ = ["atomic_path", "atomic_write", "hash_arrays", "read_json", "replace_dir", "safe_name",
           "save_figure", "sha256_bytes", "sha256_file", "write_csv", "write_h5ad", "write_json",
           "write_text"]
