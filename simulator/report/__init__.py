"""Policy reports (``econsim report``): shared labels, formats and figures
(:mod:`~simulator.report.common`), the Markdown report (:mod:`~simulator.report.markdown`)
and the self-contained HTML page (:mod:`~simulator.report.html`)."""

from simulator.report.markdown import experiment_report, run_report, write_report

__all__ = ["experiment_report", "run_report", "write_report"]
