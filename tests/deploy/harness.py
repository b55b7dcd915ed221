"""Operation-level harness: facts in -> commands out, no host involved.

It drives pyinfra's own API (Inventory, State, ``add_deploy``) exactly as the
CLI does in its prepare stage, with ``host.get_fact`` answered from a dict of
canned facts instead of a connection. It then *simulates* the execute stage:
operations run in order, each one's commands are generated with earlier
operations marked complete, so ``_if=op.did_change`` conditions (reboot only
when the driver changed, restart only when the unit changed) are evaluated by
pyinfra itself. Nothing is sent anywhere: this is a fake host, named as such.

Fact keys are class names (``LinuxDistribution``, ``File``...). A fact called
with arguments is looked up as ``{"path=/x": value}``; an unlisted fact gets
that fact's own default (an empty / absent answer, i.e. a bare host).
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass, field
from typing import Any

from pyinfra.api import Config, Inventory, State
from pyinfra.api.command import FileDownloadCommand, FileUploadCommand, FunctionCommand
from pyinfra.api.deploy import add_deploy
from pyinfra.api.facts import ShortFactBase
from pyinfra.api.state import StateStage
from pyinfra.connectors.util import CommandOutput
from pyinfra.context import ctx_host, ctx_state


def _arg_key(cls, args, kwargs) -> str:
    if args:
        bound = inspect.signature(cls().command).bind_partial(*args, **kwargs)
        kwargs = dict(bound.arguments)
    parts = []
    for key in sorted(kwargs):
        value = kwargs[key]
        if isinstance(value, (list, tuple)):
            value = ",".join(str(v) for v in value)
        elif not isinstance(value, str):
            value = json.dumps(value)
        parts.append(f"{key}={value}")
    return ",".join(parts)


def make_fact_lookup(facts: dict[str, Any], calls: list):
    def get_fact(cls, *args, **kwargs):
        if issubclass(cls, ShortFactBase):
            return cls().process_data(get_fact(cls.fact, *args, **kwargs))
        kwargs = {k: v for k, v in kwargs.items() if not k.startswith("_")}
        name = cls.__name__
        key = _arg_key(cls, args, kwargs) if (args or kwargs) else None
        calls.append((name, key))
        if name in facts:
            value = facts[name]
            if key is None:
                return value
            if isinstance(value, dict) and key in value:
                return value[key]
        return cls().default()

    return get_fact


@dataclass
class Op:
    name: str
    commands: list[str]
    env: dict[str, str]
    sudo: bool
    ran: bool = field(default=False)


@dataclass
class Result:
    ops: list[Op]
    noops: list[str]
    fact_calls: list
    uploads: dict[str, str] = field(default_factory=dict)  # dest -> text of rendered files

    @property
    def commands(self) -> list[str]:
        return [c for op in self.ops for c in op.commands]

    def changed_ops(self) -> list[Op]:
        return [op for op in self.ops if op.commands]

    def op(self, fragment: str) -> Op:
        """The single operation whose name contains ``fragment``."""
        found = [op for op in self.ops if fragment in op.name]
        assert len(found) == 1, f"{len(found)} ops named like {fragment!r}: " + ", ".join(
            op.name for op in self.ops
        )
        return found[0]

    def ops_with(self, fragment: str) -> list[Op]:
        """Operations with a command containing ``fragment``."""
        return [op for op in self.ops if any(fragment in c for c in op.commands)]

    def has_command(self, fragment: str) -> bool:
        return any(fragment in c for c in self.commands)


def _render(command, uploads: dict[str, str]) -> str:
    if isinstance(command, FileUploadCommand):
        if isinstance(command.src, str):
            return f"upload {command.src} -> {command.dest}"
        command.src.seek(0)
        content = command.src.read()
        uploads[command.dest] = content.decode() if isinstance(content, bytes) else content
        return f"upload <memory> -> {command.dest}"
    if isinstance(command, FileDownloadCommand):
        return f"download {command.src} -> {command.dest}"
    if isinstance(command, FunctionCommand):
        return f"function {command.function.__name__}"
    return command.get_masked_value()


def run(
    deploys,
    facts: dict[str, Any],
    data: dict[str, Any] | None = None,
    host_name: str = "node1",
    assume_unchanged: tuple[str, ...] = (),
    config: Config | None = None,
    others: list[tuple[str, dict, tuple[str, ...]]] = (),
    groups: tuple[str, ...] = (),
) -> Result:
    """Prepare ``deploys`` (list of @deploy functions) for one fake host and simulate execution.

    ``assume_unchanged``: operation-name fragments whose operations are simulated as
    having found nothing to do (a converged resource), to exercise ``_if`` wiring.
    ``others``: more inventory hosts ``(name, data, groups)`` that the deploy may read
    (never contacted: only the fake host runs); ``groups``: the fake host's own groups.
    """
    members: dict[str, list[str]] = {}
    for name, _, member_of in [(host_name, None, groups), *others]:
        for group in member_of:
            members.setdefault(group, []).append(name)
    inventory = Inventory(
        ([(host_name, dict(data or {})), *[(n, dict(d)) for n, d, _ in others]], {}),
        **{group: (names, {}) for group, names in members.items()},
    )
    state = State(inventory, config or Config())
    host = inventory.get_host(host_name)
    calls: list = []
    host.get_fact = make_fact_lookup(facts, calls)
    noops: list[str] = []
    original_noop = host.noop
    host.noop = lambda description: (noops.append(description), original_noop(description))

    state.set_stage(StateStage.Prepare)
    for deploy_func in deploys:
        add_deploy(state, deploy_func, host=host)

    state.set_stage(StateStage.Execute)
    state.is_executing = True
    ops = []
    uploads: dict[str, str] = {}
    try:
        with ctx_state.use(state), ctx_host.use(host):
            _execute(state, host, ops, uploads, assume_unchanged)
    finally:
        state.is_executing = False
    return Result(ops=ops, noops=noops, fact_calls=calls, uploads=uploads)


def _execute(state, host, ops: list, uploads: dict, assume_unchanged) -> None:
    if True:
        for op_hash in state.get_op_order():
            op_data = state.get_op_data_for_host(host, op_hash)
            if op_data is None:
                continue
            meta = state.get_op_meta(op_hash)
            name = ", ".join(sorted(meta.names))
            if any(fragment in name for fragment in assume_unchanged):
                commands = []
            else:
                commands = list(op_data.command_generator())
            op_data.operation_meta.set_complete(True, commands, CommandOutput([]))
            args = op_data.global_arguments
            ops.append(
                Op(
                    name=name,
                    commands=[_render(c, uploads) for c in commands],
                    env=dict(args.get("_env") or {}),
                    sudo=bool(args.get("_sudo")),
                    ran=bool(commands),
                )
            )
