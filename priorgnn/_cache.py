"""Former name of :mod:`priorgnn.cache`, kept so that older imports keep working; import ``priorgnn.cache``."""

from priorgnn.cache import cache_dir, cache_load, cache_save  # noqa: F401 - re-exported
