"""User-facing errors.

Every error a user can cause derives from :class:`PriorGNNError`. Its message names the problem
*and* the fix; the command-line tools print it without a traceback (unless ``--debug``) and exit
non-zero.
"""

from __future__ import annotations


class PriorGNNError(Exception):
    """Base class of errors caused by input, configuration or environment, not by a bug."""


class DataValidationError(PriorGNNError, ValueError):
    """The expression data (AnnData) is not usable as given."""


class ConditionFormatError(DataValidationError):
    """A perturbation condition string is malformed."""


class SplitError(PriorGNNError, ValueError):
    """A split cannot be made, or a split file does not fit the data."""


class GraphError(PriorGNNError, ValueError):
    """A knowledge graph, or the files it is built from, is unusable."""


class CheckpointError(PriorGNNError):
    """A checkpoint or run directory does not fit the model or data it is used with."""


class DownloadError(PriorGNNError):
    """An explicit download failed (refused, truncated or with a wrong checksum)."""


class ConfigError(PriorGNNError, ValueError):
    """A command-line or YAML option is invalid."""


class OutputError(PriorGNNError, OSError):
    """An output cannot be written where asked: a path that is not a folder, a symbolic link to
    nothing, or too little free disk space. Raised before the write starts, so nothing is half written."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, with one line saying what was kept and how to continue (the CLIs print it)."""
