"""The results store: every run's summary, manifest, HDR histograms and per-second windows.

Default: an embedded SQLite file at ``$INFEROPS_HISTORY``, else
``.inferops/history.sqlite`` under the current directory. For a team:
``postgresql://user@host/db`` (psycopg 3), same schema.

Guarantees:

* **Versioned schema.** ``inferops_schema`` holds the version; :data:`MIGRATIONS`
  upgrade an older store in one transaction when it is opened for writing. A
  store newer than this inferops is refused (exit 2), never rewritten.
* **One transaction per run.** A run and its histograms land together or not
  at all. SQLite runs in WAL mode with ``synchronous=FULL``: a process killed
  mid-write (or a power cut) leaves the last committed state.
* **Clear failures.** A store locked past the busy timeout, a file that is not
  a SQLite database, an unreachable PostgreSQL: :class:`UsageError` (exit 2)
  naming the store. Nothing is deleted or recreated on error.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inferops.exitcodes import UsageError
from inferops.history import metrics as metric_defs
from inferops.history.runsource import RunData

ENV_VAR = "INFEROPS_HISTORY"
DEFAULT_PATH = Path(".inferops") / "history.sqlite"
#: seconds a writer waits for another writer before giving up ($INFEROPS_HISTORY_TIMEOUT)
BUSY_TIMEOUT_S = 10.0
TIMEOUT_ENV_VAR = "INFEROPS_HISTORY_TIMEOUT"

# Each migration is a list of statements. {pk} and {blob} are the dialect's
# auto-increment primary key and binary type.
MIGRATIONS: dict[int, list[str]] = {
    1: [
        """CREATE TABLE environments (
            fingerprint TEXT PRIMARY KEY,
            facts TEXT NOT NULL)""",
        """CREATE TABLE runs (
            id {pk},
            run_key TEXT NOT NULL UNIQUE,
            scenario TEXT NOT NULL,
            profile TEXT NOT NULL,
            git_sha TEXT,
            env_fingerprint TEXT NOT NULL REFERENCES environments(fingerprint),
            started_at TEXT NOT NULL,
            imported_at TEXT NOT NULL,
            source TEXT,
            valid INTEGER NOT NULL,
            metrics TEXT NOT NULL,
            summary TEXT NOT NULL,
            manifest TEXT NOT NULL,
            windows TEXT NOT NULL)""",
        "CREATE INDEX runs_by_series ON runs (scenario, profile, started_at)",
        """CREATE TABLE histograms (
            run_id BIGINT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            encoded TEXT NOT NULL,
            PRIMARY KEY (run_id, name))""",
        """CREATE TABLE baselines (
            scenario TEXT NOT NULL,
            profile TEXT NOT NULL,
            run_id BIGINT NOT NULL REFERENCES runs(id),
            set_at TEXT NOT NULL,
            PRIMARY KEY (scenario, profile))""",
    ],
    2: [
        # confirmed regressions and improvements, for the trend report
        """CREATE TABLE findings (
            id {pk},
            scenario TEXT NOT NULL,
            profile TEXT NOT NULL,
            metric TEXT NOT NULL,
            kind TEXT NOT NULL,
            baseline_run_id BIGINT NOT NULL REFERENCES runs(id),
            candidate_run_id BIGINT NOT NULL REFERENCES runs(id),
            rerun_run_id BIGINT REFERENCES runs(id),
            effect DOUBLE PRECISION NOT NULL,
            ci_low DOUBLE PRECISION,
            ci_high DOUBLE PRECISION,
            p_value DOUBLE PRECISION,
            test TEXT NOT NULL,
            attribution TEXT NOT NULL,
            created_at TEXT NOT NULL)""",
        "CREATE INDEX findings_by_series ON findings (scenario, profile)",
    ],
}
SCHEMA_VERSION = max(MIGRATIONS)

_DIALECT = {
    "sqlite": {"pk": "INTEGER PRIMARY KEY AUTOINCREMENT", "blob": "BLOB"},
    "postgresql": {"pk": "BIGSERIAL PRIMARY KEY", "blob": "BYTEA"},
}


def default_location() -> str:
    return os.environ.get(ENV_VAR) or str(DEFAULT_PATH)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class StoredRun:
    """A run's row (no histograms): what listings and trend series need."""

    id: int
    scenario: str
    profile: str
    git_sha: str | None
    env_fingerprint: str
    started_at: str
    imported_at: str
    source: str | None
    valid: bool
    metrics: dict[str, float | None]


# -- environment fingerprint ---------------------------------------------------
def environment(manifest: dict) -> dict:
    """The facts that change results: driver, CUDA, package versions, CPU/GPU model, OS."""
    host = manifest.get("host") or {}
    gpus = host.get("gpus") or []
    return {
        "cpu_model": host.get("cpu_model"),
        "cpu_count": host.get("cpu_count"),
        "memory_bytes": host.get("memory_bytes"),
        "gpus": sorted(str(g.get("name")) for g in gpus if isinstance(g, dict)),
        "driver": next((g.get("driver_version") for g in gpus if isinstance(g, dict)), None),
        "cuda": manifest.get("cuda_version")
        or next((g.get("cuda_version") for g in gpus if isinstance(g, dict)), None),
        "os": host.get("os"),
        "kernel": host.get("kernel"),
        "python": manifest.get("python"),
        "packages": dict(sorted((manifest.get("packages") or {}).items())),
    }


def fingerprint(facts: dict) -> str:
    text = json.dumps(facts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False, default=str)


# -- the store -------------------------------------------------------------------
class Store:
    """Common logic; subclasses supply the connection and the dialect."""

    dialect = "sqlite"
    location = ""

    # subclass hooks ------------------------------------------------------------
    def _execute(self, sql: str, params: tuple = ()) -> Any:  # returns a cursor
        raise NotImplementedError

    @contextmanager
    def transaction(self) -> Iterator[None]:
        raise NotImplementedError
        yield

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # schema ----------------------------------------------------------------------
    def _has_table(self, name: str) -> bool:
        raise NotImplementedError

    def schema_version(self) -> int:
        if not self._has_table("inferops_schema"):
            return 0
        row = self._execute("SELECT MAX(version) FROM inferops_schema").fetchone()
        return int(row[0] or 0)

    def _lock_for_migration(self) -> None:
        """Serialise concurrent migrators (PostgreSQL: advisory lock; SQLite: BEGIN IMMEDIATE)."""

    def migrate(self) -> int:
        """Bring the schema to :data:`SCHEMA_VERSION`; return the version found before."""
        with self.transaction():
            self._lock_for_migration()
            found = self.schema_version()
            if found > SCHEMA_VERSION:
                raise UsageError(
                    f"results store {self.location} has schema {found}, newer than this "
                    f"inferops understands ({SCHEMA_VERSION}); upgrade inferops"
                )
            if found == 0:
                self._execute(
                    "CREATE TABLE inferops_schema (version INTEGER NOT NULL, applied_at TEXT NOT NULL)"
                )
            for version in range(found + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[version]:
                    self._execute(statement.format(**_DIALECT[self.dialect]))
                self._execute(
                    "INSERT INTO inferops_schema (version, applied_at) VALUES (?, ?)",
                    (version, _now()),
                )
        return found

    def check_readable(self) -> None:
        found = self.schema_version()
        if found > SCHEMA_VERSION:
            raise UsageError(
                f"results store {self.location} has schema {found}, newer than this "
                f"inferops understands ({SCHEMA_VERSION}); upgrade inferops"
            )
        if found < SCHEMA_VERSION:
            raise UsageError(
                f"results store {self.location} has schema {found}; "
                "run `inferops history import` (or any writing command) to migrate it"
            )

    # runs -------------------------------------------------------------------------
    def add_run(
        self, run: RunData, *, scenario: str | None = None, profile: str | None = None
    ) -> tuple[int, bool]:
        """Store ``run`` in one transaction; ``(id, True)``, or ``(id, False)`` if already stored."""
        summary, manifest = run.summary, run.manifest
        scenario = scenario or metric_defs.default_scenario(summary)
        profile = profile or manifest.get("profile") or "default"
        summary_text, manifest_text = _dumps(summary), _dumps(manifest)
        run_key = hashlib.sha256(
            (
                summary_text
                + "\0"
                + manifest_text
                + "\0"
                + "".join(sorted(run.histograms.values()))
            ).encode()
        ).hexdigest()
        facts = environment(manifest)
        env = fingerprint(facts)
        started = summary.get("started_at") or manifest.get("created_at") or _now()
        valid = bool(summary.get("valid")) and not summary.get("partial")
        with self.transaction():
            row = self._execute("SELECT id FROM runs WHERE run_key = ?", (run_key,)).fetchone()
            if row:
                return int(row[0]), False
            # one statement, not check-then-insert: two writers storing runs from the same
            # environment at once must not both insert it (PostgreSQL raised a pkey error)
            self._execute(
                "INSERT INTO environments (fingerprint, facts) VALUES (?, ?)"
                " ON CONFLICT (fingerprint) DO NOTHING",
                (env, _dumps(facts)),
            )
            run_id = self._execute(
                "INSERT INTO runs (run_key, scenario, profile, git_sha, env_fingerprint,"
                " started_at, imported_at, source, valid, metrics, summary, manifest, windows)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (
                    run_key,
                    scenario,
                    profile,
                    manifest.get("git_sha"),
                    env,
                    started,
                    _now(),
                    run.source,
                    int(valid),
                    _dumps(metric_defs.all_values(summary)),
                    summary_text,
                    manifest_text,
                    _dumps(run.windows),
                ),
            ).fetchone()[0]
            for name, encoded in sorted(run.histograms.items()):
                self._insert_histogram(int(run_id), name, encoded)
        return int(run_id), True

    def _insert_histogram(self, run_id: int, name: str, encoded: str) -> None:
        self._execute(
            "INSERT INTO histograms (run_id, name, encoded) VALUES (?, ?, ?)",
            (run_id, name, encoded),
        )

    _RUN_COLUMNS = (
        "id, scenario, profile, git_sha, env_fingerprint, started_at, imported_at, source,"
        " valid, metrics"
    )

    @staticmethod
    def _stored(row) -> StoredRun:
        return StoredRun(
            id=int(row[0]),
            scenario=row[1],
            profile=row[2],
            git_sha=row[3],
            env_fingerprint=row[4],
            started_at=row[5],
            imported_at=row[6],
            source=row[7],
            valid=bool(row[8]),
            metrics=json.loads(row[9]),
        )

    def runs(self, scenario: str | None = None, profile: str | None = None) -> list[StoredRun]:
        """Stored runs, oldest first (by start time, then id)."""
        sql = f"SELECT {self._RUN_COLUMNS} FROM runs"
        where, params = [], []
        if scenario is not None:
            where.append("scenario = ?")
            params.append(scenario)
        if profile is not None:
            where.append("profile = ?")
            params.append(profile)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY started_at, id"
        return [self._stored(r) for r in self._execute(sql, tuple(params)).fetchall()]

    def run(self, run_id: int) -> StoredRun:
        row = self._execute(
            f"SELECT {self._RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)
        ).fetchone()
        if row is None:
            raise UsageError(f"no run #{run_id} in the results store {self.location}")
        return self._stored(row)

    def run_data(self, run_id: int) -> RunData:
        """The full run: summary, manifest, histograms, windows."""
        row = self._execute(
            "SELECT summary, manifest, windows, source FROM runs WHERE id = ?", (run_id,)
        ).fetchone()
        if row is None:
            raise UsageError(f"no run #{run_id} in the results store {self.location}")
        hists = self._execute(
            "SELECT name, encoded FROM histograms WHERE run_id = ?", (run_id,)
        ).fetchall()
        return RunData(
            summary=json.loads(row[0]),
            manifest=json.loads(row[1]),
            windows=json.loads(row[2]),
            histograms={name: encoded for name, encoded in hists},
            source=f"#{run_id}" + (f" ({row[3]})" if row[3] else ""),
        )

    def series(self) -> list[tuple[str, str]]:
        rows = self._execute(
            "SELECT DISTINCT scenario, profile FROM runs ORDER BY scenario, profile"
        ).fetchall()
        return [(r[0], r[1]) for r in rows]

    def environment_facts(self, fingerprint_: str) -> dict:
        row = self._execute(
            "SELECT facts FROM environments WHERE fingerprint = ?", (fingerprint_,)
        ).fetchone()
        return json.loads(row[0]) if row else {}

    # baselines ------------------------------------------------------------------------
    def set_baseline(self, run_id: int) -> StoredRun:
        run = self.run(run_id)
        with self.transaction():
            self._execute(
                "DELETE FROM baselines WHERE scenario = ? AND profile = ?",
                (run.scenario, run.profile),
            )
            self._execute(
                "INSERT INTO baselines (scenario, profile, run_id, set_at) VALUES (?, ?, ?, ?)",
                (run.scenario, run.profile, run.id, _now()),
            )
        return run

    def baseline(self, scenario: str, profile: str) -> int | None:
        row = self._execute(
            "SELECT run_id FROM baselines WHERE scenario = ? AND profile = ?", (scenario, profile)
        ).fetchone()
        return int(row[0]) if row else None

    def baselines(self) -> dict[tuple[str, str], int]:
        rows = self._execute("SELECT scenario, profile, run_id FROM baselines").fetchall()
        return {(r[0], r[1]): int(r[2]) for r in rows}

    # findings ----------------------------------------------------------------------------
    def add_finding(self, finding: dict) -> int:
        with self.transaction():
            row = self._execute(
                "INSERT INTO findings (scenario, profile, metric, kind, baseline_run_id,"
                " candidate_run_id, rerun_run_id, effect, ci_low, ci_high, p_value, test,"
                " attribution, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " RETURNING id",
                (
                    finding["scenario"],
                    finding["profile"],
                    finding["metric"],
                    finding["kind"],
                    finding["baseline_run_id"],
                    finding["candidate_run_id"],
                    finding.get("rerun_run_id"),
                    finding["effect"],
                    finding.get("ci_low"),
                    finding.get("ci_high"),
                    finding.get("p_value"),
                    finding["test"],
                    _dumps(finding.get("attribution") or []),
                    _now(),
                ),
            ).fetchone()
        return int(row[0])

    def findings(self) -> list[dict]:
        cols = (
            "id, scenario, profile, metric, kind, baseline_run_id, candidate_run_id,"
            " rerun_run_id, effect, ci_low, ci_high, p_value, test, attribution, created_at"
        )
        rows = self._execute(f"SELECT {cols} FROM findings ORDER BY id").fetchall()
        names = [c.strip() for c in cols.split(",")]
        out = []
        for r in rows:
            item = dict(zip(names, r, strict=True))
            item["attribution"] = json.loads(item["attribution"])
            out.append(item)
        return out


# -- SQLite ---------------------------------------------------------------------------------
class SQLiteStore(Store):
    dialect = "sqlite"

    def __init__(self, path: str | os.PathLike, *, create: bool, busy_timeout_s: float):
        self.path = Path(path)
        self.location = str(self.path)
        if not self.path.exists():
            if not create:
                raise UsageError(
                    f"no results store at {self.location} "
                    "(store runs first: inferops history import RUN_DIR)"
                )
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UsageError(f"cannot create {self.path.parent}: {exc.strerror}") from None
        elif not self.path.is_file():
            raise UsageError(f"results store {self.location} is not a file")
        try:
            # isolation_level=None: we issue BEGIN IMMEDIATE / COMMIT ourselves
            self.conn = sqlite3.connect(
                self.path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
            )
            self.busy_timeout_s = busy_timeout_s
            self._execute("PRAGMA journal_mode=WAL")
            self._execute("PRAGMA synchronous=FULL")
            self._execute("PRAGMA foreign_keys=ON")
        except UsageError:
            raise
        self._depth = 0

    def _translate(self, exc: sqlite3.Error) -> UsageError:
        text = str(exc)
        if "locked" in text or "busy" in text:
            return UsageError(
                f"results store {self.location} is locked by another writer "
                f"(waited {self.busy_timeout_s:g} s); nothing was written, try again"
            )
        if isinstance(exc, sqlite3.DatabaseError) and (
            "not a database" in text or "malformed" in text or "corrupt" in text
        ):
            return UsageError(
                f"results store {self.location} is not a readable SQLite database ({text}); "
                "it was left untouched"
            )
        return UsageError(f"results store {self.location}: {text}")

    def _execute(self, sql: str, params: tuple = ()):
        try:
            return self.conn.execute(sql, params)
        except sqlite3.Error as exc:
            raise self._translate(exc) from None

    def _has_table(self, name: str) -> bool:
        return bool(
            self._execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
            ).fetchone()
        )

    @contextmanager
    def transaction(self) -> Iterator[None]:
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._execute("BEGIN IMMEDIATE")  # take the write lock now, not at the first write
        self._depth = 1
        try:
            yield
        except BaseException:
            self._depth = 0
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            raise
        self._depth = 0
        self._execute("COMMIT")

    def integrity(self) -> str:
        return str(self._execute("PRAGMA integrity_check").fetchone()[0])

    def close(self) -> None:
        self.conn.close()


# -- PostgreSQL --------------------------------------------------------------------------------
class PostgresStore(Store):
    dialect = "postgresql"

    def __init__(self, url: str, *, create: bool, busy_timeout_s: float):
        try:
            import psycopg
        except ImportError:
            raise UsageError(
                "--store postgresql://... needs psycopg 3 (pip install 'psycopg[binary]')"
            ) from None
        self._psycopg = psycopg
        self.location = _redact(url)
        try:
            self.conn = psycopg.connect(url, connect_timeout=10, autocommit=True)
            self._execute(f"SET lock_timeout = '{int(busy_timeout_s * 1000)}ms'")
        except psycopg.Error as exc:
            raise UsageError(
                f"cannot open results store {self.location}: {_first_line(exc)}"
            ) from None
        self._depth = 0
        self._tx = None

    def _execute(self, sql: str, params: tuple = ()):
        try:
            return self.conn.execute(sql.replace("?", "%s"), params)
        except self._psycopg.errors.LockNotAvailable:
            raise UsageError(
                f"results store {self.location} is locked by another writer; "
                "nothing was written, try again"
            ) from None
        except self._psycopg.Error as exc:
            raise UsageError(f"results store {self.location}: {_first_line(exc)}") from None

    def _has_table(self, name: str) -> bool:
        return bool(self._execute("SELECT to_regclass(?)", (name,)).fetchone()[0])

    def _lock_for_migration(self) -> None:
        self._execute("SELECT pg_advisory_xact_lock(7237005)")  # any constant: inferops' lock

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self.conn.transaction():
            yield

    def close(self) -> None:
        self.conn.close()


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _redact(url: str) -> str:
    """The URL without its password (never print secrets)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def _busy_timeout() -> float:
    text = os.environ.get(TIMEOUT_ENV_VAR)
    if not text:
        return BUSY_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"${TIMEOUT_ENV_VAR}: expected seconds, got {text!r}") from None
    if not value >= 0:
        raise UsageError(f"${TIMEOUT_ENV_VAR}: must be >= 0, got {text!r}")
    return value


def open_store(
    location: str | None = None, *, write: bool = False, busy_timeout_s: float | None = None
) -> Store:
    """Open the store at ``location`` (a path or a postgresql:// URL; default: :func:`default_location`).

    ``write=True`` creates a missing SQLite file and migrates the schema;
    otherwise a missing store or an old schema is a :class:`UsageError`.
    """
    location = location or default_location()
    busy_timeout_s = _busy_timeout() if busy_timeout_s is None else busy_timeout_s
    if location.startswith(("postgresql://", "postgres://")):
        store: Store = PostgresStore(location, create=write, busy_timeout_s=busy_timeout_s)
    elif "://" in location:
        raise UsageError(f"--store {location!r}: expected a file path or a postgresql:// URL")
    else:
        store = SQLiteStore(location, create=write, busy_timeout_s=busy_timeout_s)
    try:
        if write:
            store.migrate()
        else:
            store.check_readable()
    except BaseException:
        store.close()
        raise
    return store
