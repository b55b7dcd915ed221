"""Fact reads batched into one SSH round trip per host, stage and way of running them.

pyinfra 3 runs a fact's command every time an operation asks for it: one SSH exec
through ``sudo`` per ``host.get_fact`` call, nothing cached (pyinfra 2's fact cache
is gone). A converged ``cpu_node`` host answers ~67 such reads (``File``,
``Directory`` and ``Sha1File`` for every uploaded file, ``DebPackages`` six times),
most of a no-op re-run's time.

``batch_fact_reads()``, called at the top of a deploy file, changes how the current
host answers ``host.get_fact``:

1. it remembers which facts (class and arguments, never their answers) the deploy
   read, per stage (prepare with ``-y``, detect without, execute), under
   ``.inferops/facts/<deploy>/<host>.json``, each with the number of the way it was
   run (``sudo``, ``_env``...: 0 for the first seen in the run, 1 for the next; the
   settings themselves, which may hold a proxy password, are not written);
2. on the next run, the first fact read of a stage run a given way runs *all* the facts remembered for that stage and way in one shell command, each
   fact's own command with its exit status and base64-framed output, and later reads
   are answered from that snapshot (a proxy ``_env`` on download operations makes a
   second way, hence a second batch, not a miss for every read);
3. the snapshot is dropped as soon as anything other than a fact read runs on the
   host (an operation's command, an upload), so every read after a change goes to
   the host again, exactly as without batching.

So answers are always read from the host in this run, by the fact's own command,
and only reused while this run has changed nothing on the host. A fact whose
command fails, is missing its binary, or cannot be processed is left out of the
snapshot and read the normal way (pyinfra reports its error as usual); facts with
preconditions or another shell are never batched. ``fact_batching = false`` turns
all of this off.
"""

from __future__ import annotations

import atexit
import base64
import copy
import importlib
import json
import os
import shlex
from pathlib import Path
from typing import Any

from pyinfra import logger
from pyinfra.api import StringCommand
from pyinfra.api.arguments import CONNECTOR_ARGUMENT_KEYS
from pyinfra.api.facts import FactBase, ShortFactBase
from pyinfra.api.facts import _handle_fact_kwargs as handle_fact_kwargs  # pyinfra's own keying
from pyinfra.api.state import StateStage
from pyinfra.context import ctx_host, ctx_state

from inferops.deploy.common import local_state_dir
from inferops.deploy.knobs import knob

FRAME = "@@inferops-fact"
RECORD_VERSION = 2
STAGES = ("prepare", "detect", "execute")
# Each fact runs in its own background subshell, its framed answer written to a private
# temp dir and printed once all are done: the batch takes as long as its slowest fact
# (``pip freeze``), not the sum. "/$?" after the output keeps its trailing newlines
# through $(...) and carries the exit status.
_PRELUDE = r"""command -v base64 >/dev/null 2>&1 || exit 97
d=$(mktemp -d) || exit 96
trap 'rm -rf "$d"' EXIT
g() {
  o=$( (eval "$2") 2>/dev/null; echo "/$?")
  printf '@@inferops-fact %s %s ' "$1" "${o##*/}"
  printf '%s' "${o%/*}" | base64 | tr -d '\n'; echo
}
f() { g "$1" "$2" > "$d/$1" & }
r() {
  if command -v "$2" >/dev/null 2>&1; then f "$1" "$3"
  else echo "@@inferops-fact $1 127 " > "$d/$1"; fi
}
"""
_EPILOGUE = 'wait\ncat "$d"/*\n'

_open_batches: list[FactBatch] = []


def fact_id(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def load_fact(identifier: str) -> type[FactBase] | None:
    module, _, name = identifier.partition(":")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return None
    return cls if batchable(cls) else None


def batchable(cls: type) -> bool:
    """Facts whose answer is just their command's output, run by the default shell."""
    return (
        isinstance(cls, type)
        and issubclass(cls, FactBase)
        and not issubclass(cls, ShortFactBase)
        and cls.shell_executable is None
        and cls.check_preconditions is FactBase.check_preconditions
    )


def _freeze(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=repr)


def _command_text(command) -> str:
    return command.get_raw_value() if isinstance(command, StringCommand) else str(command)


def batch_script(requests: list[tuple[FactBase, dict]]) -> str:
    """One ``sh`` script that runs every request's fact command and frames its answer.

    ``requests`` are fact instances with their arguments; like pyinfra, the instance
    whose ``command`` was called later ``process``-es the output (some facts keep
    their arguments on ``self``).
    """
    parts = [_PRELUDE]
    for index, (fact, kwargs) in enumerate(requests):
        command = _command_text(fact.command(**kwargs) if callable(fact.command) else fact.command)
        needs = fact.requires_command(**kwargs)
        if needs:
            parts.append(f"r {index} {shlex.quote(str(needs))} {shlex.quote(command)}\n")
        else:
            parts.append(f"f {index} {shlex.quote(command)}\n")
    parts.append(_EPILOGUE)
    return "".join(parts)


def parse_batch(lines: list[str]) -> dict[int, tuple[int, list[str]]]:
    """Framed answers -> ``{request index: (exit status, stdout lines)}``.

    Lines are split as pyinfra's connectors split them (on ``\\n``, which is stripped).
    """
    answers: dict[int, tuple[int, list[str]]] = {}
    for line in lines:
        if not line.startswith(FRAME + " "):
            continue
        fields = line[len(FRAME) + 1 :].split(" ", 2)
        if len(fields) < 2:
            continue
        try:
            index, status = int(fields[0]), int(fields[1])
            text = base64.b64decode(fields[2] if len(fields) > 2 else "").decode("utf-8", "replace")
        except ValueError:
            continue
        output = text.split("\n")
        if output and output[-1] == "":
            output.pop()
        answers[index] = (status, output)
    return answers


class FactBatch:
    """One host's batched fact reads for this pyinfra run (see the module docstring)."""

    def __init__(self, host, state, record: Path):
        self.host = host
        self.state = state
        self.record = record
        # {stage: [(fact id, kwargs, way)]} from the last run, and this run's, in order
        self.remembered = self._load(record)
        self.asked: dict[str, dict[str, tuple[str, dict, int]]] = {}
        self.ways: dict[str, int] = {}  # frozen executor arguments -> number, this run
        self.snapshot: dict[tuple, Any] = {}
        self.snapshot_stage: str | None = None
        self.batched: set[tuple[str, int]] = set()  # (stage, way) read in one command
        self.reading = 0
        self.batches = 0
        self.hits = 0
        self._read = host.get_fact
        self._run_shell_command = host.run_shell_command
        self._put_file = host.put_file
        self._rsync = host.rsync

    # --- what the host instance gets ---------------------------------------------
    def install(self) -> None:
        self.host.get_fact = self.get_fact
        self.host.run_shell_command = self.run_shell_command
        self.host.put_file = self.put_file
        self.host.rsync = self.rsync

    def get_fact(self, cls, *args, **kwargs):
        if isinstance(cls, type) and issubclass(cls, ShortFactBase):
            return cls().process_data(self.get_fact(cls.fact, *args, **kwargs))
        if not batchable(cls):
            return self._read_one(cls, args, kwargs)
        fact_kwargs, global_kwargs = handle_fact_kwargs(self.state, self.host, cls, args, kwargs)
        fact_kwargs = {k: v for k, v in fact_kwargs.items() if k != "self"}  # getcallargs'
        executor = {k: v for k, v in global_kwargs.items() if k in CONNECTOR_ARGUMENT_KEYS}
        stage = self._stage()
        way = self.ways.setdefault(_freeze(executor), len(self.ways))
        self._remember(stage, cls, fact_kwargs, way)
        if self.snapshot_stage != stage:
            self.snapshot = {}  # facts are read afresh for each stage, as pyinfra does
            self.snapshot_stage = stage
        if (stage, way) not in self.batched:
            self._batch(stage, way, executor)
        key = (fact_id(cls), _freeze(fact_kwargs), _freeze(executor))
        if key in self.snapshot:
            self.hits += 1
            logger.debug("Fact %s (%s) answered from this stage's batch", cls.__name__, key[1])
            return copy.deepcopy(self.snapshot[key])
        return self._read_one(cls, args, kwargs)

    def run_shell_command(self, *args, **kwargs):
        if not self.reading:
            self._changed()
        return self._run_shell_command(*args, **kwargs)

    def put_file(self, *args, **kwargs):
        self._changed()
        return self._put_file(*args, **kwargs)

    def rsync(self, *args, **kwargs):
        self._changed()
        return self._rsync(*args, **kwargs)

    # --- internals -----------------------------------------------------------------
    def _stage(self) -> str:
        """``execute``; or, before it, ``detect`` when pyinfra evaluates every operation to
        show changes (no ``-y``: its reads are all the operations' facts) or ``prepare``
        (``-y``: only what the deploy code reads itself)."""
        if self.state.current_stage == StateStage.Execute:
            return "execute"
        return "detect" if self.state.should_check_for_changes() else "prepare"

    def _changed(self) -> None:
        if self.snapshot:
            logger.debug("%s: a command ran; later fact reads go to the host", self.host.name)
        self.snapshot = {}

    def _read_one(self, cls, args, kwargs):
        self.reading += 1
        try:
            return self._read(cls, *args, **kwargs)
        finally:
            self.reading -= 1

    def _remember(self, stage: str, cls, fact_kwargs: dict, way: int) -> None:
        try:
            frozen = json.dumps(fact_kwargs, sort_keys=True)
        except (TypeError, ValueError):
            return  # arguments we could not replay next time
        self.asked.setdefault(stage, {}).setdefault(
            f"{fact_id(cls)} {frozen} {way}", (fact_id(cls), fact_kwargs, way)
        )

    def _batch(self, stage: str, way: int, executor: dict) -> None:
        self.batched.add((stage, way))
        requests = []
        for identifier, kwargs, remembered_way in self.remembered.get(stage, []):
            cls = load_fact(identifier) if remembered_way == way else None
            if cls is not None:
                requests.append((cls(), kwargs))
        if len(requests) < 2:
            return
        self.batches += 1
        logger.debug("%s: reading %d facts in one command", self.host.name, len(requests))
        self.reading += 1
        try:
            status, output = self._run_shell_command(
                StringCommand(batch_script(requests)),
                print_output=False,
                print_input=self.state.print_fact_input,
                **executor,
            )
        except Exception as exc:  # a failed batch only costs the individual reads
            logger.debug("%s: fact batch failed (%s); reading one by one", self.host.name, exc)
            return
        finally:
            self.reading -= 1
        if not status:
            return
        answers = parse_batch(output.stdout_lines)
        ok_codes = set(executor.get("_success_exit_codes") or [0])
        for index, (fact, kwargs) in enumerate(requests):
            code, lines = answers.get(index, (None, []))
            if code not in ok_codes:
                continue  # failed or binary missing: read it the normal way
            try:
                value = fact.process(lines) if lines else fact.default()
            except Exception:  # FactProcessError and friends: let pyinfra report it
                continue
            self.snapshot[(fact_id(type(fact)), _freeze(kwargs), _freeze(executor))] = value

    @staticmethod
    def _load(record: Path) -> dict[str, list[tuple[str, dict, int]]]:
        try:
            data = json.loads(record.read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("version") != RECORD_VERSION:
            return {}
        stages = {}
        for stage in STAGES:
            entries = data.get(stage) or []
            stages[stage] = [
                (e[0], e[1], e[2])
                for e in entries
                if isinstance(e, list) and len(e) == 3 and isinstance(e[1], dict)
                and isinstance(e[2], int)
            ]  # fmt: skip
        return stages

    def save(self) -> None:
        """Write what this run asked (facts and arguments only), if it differs.

        A stage this run never reached (``--dry`` stops before execute) keeps what the
        last run that reached it asked, so dry runs and real runs do not erase each other.
        """
        asked = {
            stage: [list(v) for v in entries.values()] for stage, entries in self.asked.items()
        }
        if not asked:
            return
        stages = STAGES
        before = {"version": RECORD_VERSION,
                  **{s: [list(e) for e in self.remembered.get(s, [])] for s in stages}}  # fmt: skip
        data = {"version": RECORD_VERSION, **{s: asked.get(s, before[s]) for s in stages}}
        if _freeze(data) == _freeze(before):
            return
        self.record.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.record.with_name(f".{self.record.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, self.record)


def _save_all() -> None:
    for batch in _open_batches:
        try:
            batch.save()
        except OSError as exc:  # a cache write must never fail a deploy
            logger.warning(f"could not record fact reads for {batch.host.name}: {exc}")


def batch_fact_reads() -> FactBatch | None:
    """Batch the current host's fact reads for this run (once per host; see module doc)."""
    host = ctx_host.get()
    state = ctx_state.get()
    if not knob("fact_batching"):
        return None
    existing = getattr(host, "_inferops_fact_batch", None)
    if existing is not None:
        return existing
    deploy = Path(state.current_deploy_filename or "deploy").stem
    safe_name = host.name.replace("/", "_").replace(os.sep, "_")
    batch = FactBatch(host, state, local_state_dir("facts", deploy) / f"{safe_name}.json")
    batch.install()
    host._inferops_fact_batch = batch
    if not _open_batches:
        atexit.register(_save_all)
    _open_batches.append(batch)
    return batch
