"""HTML reports of segmentations (``lociseg demo``)."""

from .html import ReportItem, build_report, overlay_outlines, svg_histogram

__all__ = ["ReportItem", "build_report", "overlay_outlines", "svg_histogram"]
