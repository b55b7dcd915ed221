"""Nightly regression runs: results store, statistical comparison, change points, trend report.

Modules, pipeline order:

* ``runsource``  the one adapter onto the run-folder format (docs/run-format.md)
* ``store``      results store: SQLite (default) or PostgreSQL, versioned schema
* ``stats``      distribution statistics over HDR histograms and per-second windows
* ``changepoints`` E-divisive change points (Otava/Hunter split-and-merge, t-test)
* ``compare``    one run against another: comparability, metrics, effect sizes
* ``attribution`` what changed in the environment between two manifests
* ``detect``     the nightly verdict: baseline + history + confirming rerun
* ``trend``      the self-contained HTML trend report
* ``config`` / ``nightly``  the ``inferops nightly`` job
"""
