"""The report: tables (markdown, LaTeX), figures and the generated summary of an evaluation.

:func:`write_report` renders an :class:`~priorgnn.metrics.evaluation.EvaluationResult` into a folder
(``report.md``, CSV/JSON tables, ``table.tex``, PNG figures).
"""

from priorgnn.report.figures import plot_de_heatmap, plot_delta_scatter, plot_metric_bars
from priorgnn.report.summary import best_models, summary_lines, verdict
from priorgnn.report.tables import comparison_markdown, latex_table, markdown_table, summary_markdown
from priorgnn.report.writer import DEFAULT_HEADLINE, DEFAULT_TABLE_METRICS, write_report

__all__ = [
    "DEFAULT_HEADLINE",
    "DEFAULT_TABLE_METRICS",
    "best_models",
    "comparison_markdown",
    "latex_table",
    "markdown_table",
    "plot_de_heatmap",
    "plot_delta_scatter",
    "plot_metric_bars",
    "summary_lines",
    "summary_markdown",
    "verdict",
    "write_report",
]
