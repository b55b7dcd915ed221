"""Batched fact reads (``inferops.deploy.factbatch``) on a real connector: pyinfra's ``@local``.

Facts are read from this machine by their own commands, through pyinfra's API as the
CLI does; every command the connector runs is counted. What must hold:

- one batch answers a stage's remembered reads exactly as reading them one by one;
- a converged run sends one command per stage, however many reads;
- anything else that runs on the host drops the snapshot, so later reads see the change;
- failing or missing-binary facts are read the normal way, never guessed.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from pyinfra.api import Config, Inventory, State
from pyinfra.api.connect import connect_all
from pyinfra.api.state import StateStage
from pyinfra.context import ctx_host, ctx_state
from pyinfra.facts.files import Directory, File, Sha1File
from pyinfra.facts.server import Arch, LinuxDistribution

from inferops.deploy.factbatch import FactBatch, batch_script, parse_batch
from inferops.deploy.facts import FileText


class Counting:
    """Wraps the connector: every command that really reaches the host."""

    def __init__(self, host):
        self.commands: list[str] = []
        self._run = host.connector.run_shell_command
        host.connector.run_shell_command = self

    def __call__(self, command, *args, **kwargs):
        self.commands.append(str(command))
        return self._run(command, *args, **kwargs)


def new_run(record: Path, dry: bool = False):
    """A fresh pyinfra state on @local with batching installed, as a deploy file does;
    like ``pyinfra -y`` (no change detection), or without ``-y`` when ``dry``."""
    inventory = Inventory((["@local"], {}))
    state = State(inventory, Config(), check_for_changes=dry)
    connect_all(state)
    host = inventory.get_host("@local")
    state.set_stage(StateStage.Prepare)
    counter = Counting(host)
    batch = FactBatch(host, state, record)
    batch.install()
    return state, host, batch, counter


def read(state, host, fact, **kwargs):
    with ctx_state.use(state), ctx_host.use(host):
        return host.get_fact(fact, **kwargs)


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "a.conf").write_text("one\n\ntwo\n\n")  # blank and trailing lines kept
    (tmp_path / "marker").write_text("abc")  # no trailing newline
    (tmp_path / "dir").mkdir()
    return tmp_path


def requests(tree: Path):
    return [
        (File, {"path": str(tree / "a.conf")}),
        (File, {"path": str(tree / "missing")}),
        (Directory, {"path": str(tree / "dir")}),
        (Sha1File, {"path": str(tree / "a.conf")}),
        (FileText, {"path": str(tree / "marker")}),
        (LinuxDistribution, {}),
        (Arch, {}),
    ]


def test_batched_answers_equal_one_by_one_reads(tree):
    for fact, kwargs in requests(tree):
        fact_instance = fact()
        answers = parse_batch(_sh(batch_script([(fact_instance, kwargs)])))
        code, lines = answers[0]
        command = fact().command(**kwargs)
        text = command if isinstance(command, str) else command.get_raw_value()
        alone = subprocess.run(
            ["sh", "-c", text],
            capture_output=True,
            text=True,
        )
        expected = alone.stdout.split("\n")
        if expected[-1] == "":
            expected.pop()
        assert (code, lines) == (alone.returncode, expected), fact.__name__


def test_failing_and_missing_binary_facts_carry_their_status():
    class Fails(FileText):
        def command(self, path):
            return f"echo partial; exit 3 # {path}"

    class NeedsBinary(FileText):
        def requires_command(self, path):
            return "no-such-binary-inferops"

    answers = parse_batch(
        _sh(batch_script([(Fails(), {"path": "x"}), (NeedsBinary(), {"path": "/etc/hostname"})]))
    )
    assert answers[0] == (3, ["partial"])
    assert answers[1] == (127, [])


def test_second_run_reads_every_remembered_fact_in_one_command(tree, tmp_path):
    record = tmp_path / "facts.json"
    state, host, batch, counter = new_run(record)
    first = [read(state, host, fact, **kwargs) for fact, kwargs in requests(tree)]
    assert len(counter.commands) == len(requests(tree))  # nothing remembered yet
    batch.save()

    state, host, batch, counter = new_run(record)
    second = [read(state, host, fact, **kwargs) for fact, kwargs in requests(tree)]
    second += [read(state, host, fact, **kwargs) for fact, kwargs in requests(tree)]
    assert len(counter.commands) == 1 and batch.batches == 1
    assert _without_times(second) == _without_times(first) * 2


def test_a_command_on_the_host_drops_the_snapshot(tree, tmp_path):
    record = tmp_path / "facts.json"
    state, host, batch, _ = new_run(record)
    created = tree / "created-later"
    read(state, host, File, path=str(created))
    read(state, host, File, path=str(tree / "a.conf"))
    batch.save()

    state, host, batch, counter = new_run(record)
    assert read(state, host, File, path=str(created)) is None  # from the batch
    with ctx_state.use(state), ctx_host.use(host):
        host.run_shell_command(f"touch {created}")  # an operation's command
    assert read(state, host, File, path=str(created))["size"] == 0  # read again: it exists
    assert len(counter.commands) == 3  # batch, the change, the fresh read


def test_each_stage_reads_its_own_facts_afresh(tree, tmp_path):
    record = tmp_path / "facts.json"
    state, host, batch, _ = new_run(record)
    read(state, host, Arch)
    read(state, host, LinuxDistribution)
    state.set_stage(StateStage.Execute)
    read(state, host, File, path=str(tree / "a.conf"))
    read(state, host, Directory, path=str(tree / "dir"))
    batch.save()

    state, host, batch, counter = new_run(record)
    read(state, host, Arch)
    read(state, host, LinuxDistribution)
    state.set_stage(StateStage.Execute)
    read(state, host, Arch)  # asked in prepare only: read on its own in execute
    read(state, host, File, path=str(tree / "a.conf"))
    read(state, host, Directory, path=str(tree / "dir"))
    assert batch.batches == 2
    assert len(counter.commands) == 3


def test_a_failing_fact_is_left_to_pyinfra(tmp_path):
    class FailsOnce(FileText):
        def command(self, path):
            return f"exit 5 # {path}"

    record = tmp_path / "facts.json"
    entries = [[f"{__name__}:FailsOnce", {"path": "x"}, 0], ["pyinfra.facts.server:Arch", {}, 0]]
    record.write_text(json.dumps({"version": 2, "prepare": entries, "execute": []}))
    globals()["FailsOnce"] = FailsOnce  # importable by the record's id
    state, host, batch, counter = new_run(record)
    state.config.IGNORE_ERRORS = True
    read(state, host, Arch)
    # Its exit status kept it out of the snapshot: only Arch is answered from there.
    assert {key[0] for key in batch.snapshot} == {"pyinfra.facts.server:Arch"}
    with ctx_state.use(state), ctx_host.use(host):
        host.get_fact(FailsOnce, path="x", _ignore_errors=True)
    assert len(counter.commands) == 2  # the batch, then pyinfra's own read of FailsOnce


def test_reads_run_another_way_get_their_own_batch(tree, tmp_path):
    """A proxy ``_env`` on download operations is another way of running a fact: its reads
    get their own batch instead of all missing, and the settings are never written."""
    record = tmp_path / "facts.json"
    proxy = {"http_proxy": "http://user:secret@proxy.invalid:3128"}
    plain = [(File, {"path": str(tree / "a.conf")}), (Directory, {"path": str(tree / "dir")})]
    proxied = [(FileText, {"path": str(tree / "marker")}), (Arch, {})]

    def read_all(state, host):
        values = [read(state, host, fact, **kwargs) for fact, kwargs in plain]
        return values + [read(state, host, fact, **kwargs, _env=proxy) for fact, kwargs in proxied]

    state, host, batch, _ = new_run(record)
    first = read_all(state, host)
    batch.save()
    assert "secret" not in record.read_text() and "proxy.invalid" not in record.read_text()

    state, host, batch, counter = new_run(record)
    assert _without_times(read_all(state, host)) == _without_times(first)
    assert len(counter.commands) == 2 and batch.batches == 2 and batch.hits == 4


def test_dry_runs_and_real_runs_keep_their_own_records(tree, tmp_path):
    """``--dry`` (detect, never execute) and ``-y`` runs (prepare, execute) read different
    facts before execute: each keeps its own list, so alternating costs no extra reads."""
    record = tmp_path / "facts.json"
    state, host, batch, _ = new_run(record)
    read(state, host, Arch)
    state.set_stage(StateStage.Execute)
    read(state, host, File, path=str(tree / "a.conf"))
    read(state, host, Directory, path=str(tree / "dir"))
    batch.save()

    state, host, batch, _ = new_run(record, dry=True)  # detect stage only, other reads
    read(state, host, LinuxDistribution)
    read(state, host, File, path=str(tree / "a.conf"))
    batch.save()

    state, host, batch, counter = new_run(record)  # -y again: prepare and execute batched
    read(state, host, Arch)
    state.set_stage(StateStage.Execute)
    read(state, host, File, path=str(tree / "a.conf"))
    read(state, host, Directory, path=str(tree / "dir"))
    assert batch.hits == 2 and len(counter.commands) == 2  # Arch alone: no batch of one

    state, host, batch, counter = new_run(record, dry=True)  # and --dry again
    read(state, host, LinuxDistribution)
    read(state, host, File, path=str(tree / "a.conf"))
    assert batch.hits == 2 and len(counter.commands) == 1


def _sh(script: str) -> list[str]:
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True).stdout.split("\n")


def _without_times(values):
    """File facts carry atime, which reading a file may bump between two runs."""
    return [
        {k: v for k, v in value.items() if k not in ("atime",)}
        if isinstance(value, dict)
        else value
        for value in values
    ]
