"""The HTML hardware-sizing report: read run folders, size a fleet, render one file.

Modules, one job each:

* :mod:`~inferops.report.runs`: read and validate run folders (docs/run-format.md)
* :mod:`~inferops.report.catalog`: read and validate ``hardware.toml``
* :mod:`~inferops.report.sizing`: node counts, Erlang C cross-check, cost
* :mod:`~inferops.report.analysis`: turn runs + options into the report's facts
* :mod:`~inferops.report.charts`: matplotlib charts as inline SVG
* :mod:`~inferops.report.render`: jinja2 template -> one self-contained HTML file
* :mod:`~inferops.report.synthetic`: synthetic run folders for tests and benchmarks
"""
