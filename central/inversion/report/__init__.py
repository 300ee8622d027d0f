"""The inversion's report for a person: `report.html` (one self-contained file) and `report.pdf`.

`content.ReportContent` holds what the report shows, `figures` draws it (matplotlib, sized for A4
paper), `document` writes the HTML and the PDF from the same figures and tables.
"""

from .content import ReportContent, StationSeries, comparison_rows
from .document import write_report

__all__ = ["ReportContent", "StationSeries", "comparison_rows", "write_report"]
