"""Nightly regression runs: results store, statistical comparison, change points, trend report.

Modules, in pipeline order:

* ``runsource``    the one adapter onto the run-folder format (docs/run-format.md)
* ``metrics``      the metrics a run is judged on, read from ``summary.json``
* ``store``        the results store: SQLite (default) or PostgreSQL, versioned schema
* ``stats``        distribution statistics over HDR histograms and per-second windows
* ``changepoints`` E-divisive change points (Otava/Hunter split and merge, t-test)
* ``compare``      one run against another: comparability, effects, intervals, tests
* ``attribution``  what changed in the environment between two manifests
* ``detect``       the nightly verdict: baseline, history spread, confirming rerun
* ``trend``        the self-contained HTML trend report
* ``config``, ``nightly``  the ``inferops nightly`` job and its ``nightly.toml``
* ``refs``         command-line references to runs (folder or ``#ID``)
* ``synthetic``    FAKE histories with known truth, for tests and benchmarks
* ``*_cli``        the ``compare``, ``history``, ``baseline`` and ``nightly`` subcommands
"""
