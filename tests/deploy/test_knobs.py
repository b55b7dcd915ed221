"""Each knob is declared once, in the module that reads it; everything else derives from that."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from inferops.deploy import catalog, knobs
from inferops.deploy.catalog import COMPONENTS, KNOBS, render_all_py
from inferops.models import EMBEDDED

PACKAGE = Path(catalog.__file__).resolve().parent


def _module_name(path: Path) -> str:
    return f"inferops.deploy.{path.stem}"


def _imports(path: Path) -> set[str]:
    """inferops.deploy modules imported anywhere in the file (also inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "inferops.deploy":
                found |= {f"inferops.deploy.{alias.name}" for alias in node.names}
            elif node.module.startswith("inferops.deploy."):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("inferops.deploy.")}
    return found


MODULES = {_module_name(p): p for p in sorted(PACKAGE.glob("*.py")) if p.stem != "__init__"}
GRAPH = {name: _imports(path) & set(MODULES) for name, path in MODULES.items()}


def _is_component(path: Path) -> bool:
    return "@deploy(" in path.read_text()


def test_group_data_all_py_is_generated_and_current():
    assert catalog.ALL_PY.read_text() == render_all_py(), (
        "group_data/all.py is stale: run python -m inferops.deploy.catalog"
    )
    assert catalog.main(["--check"]) == 0


def test_all_py_lists_every_knob_with_its_doc():
    text = render_all_py()
    for item in KNOBS.values():
        assert f"# {item.name} = " in text
        assert item.doc.split()[0] in text


def test_a_knob_declared_twice_is_refused():
    with pytest.raises(ValueError, match="declared by both"):
        knobs.declare("somewhere.else", [KNOBS["server_port"]])


def test_every_declaring_module_is_in_the_catalog():
    declaring = {
        name for name, path in MODULES.items() if "DEFAULTS = declare(__name__" in path.read_text()
    }
    assert declaring == {module.__name__ for module in COMPONENTS}


def _transitive(name: str) -> set[str]:
    seen, todo = set(), [name]
    while todo:
        for dep in GRAPH[todo.pop()]:
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def _knobs_read(path: Path) -> set[str]:
    read = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("knob", "enabled_on_gpu")
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            read.add(node.args[0].value)
    return read


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_read_only_knobs_declared_below_them(name):
    """knob(key) falls back to the declared default: the declaring module must be
    imported (it is the reader itself, or something it imports)."""
    owner = {item.name: module.__name__ for module in COMPONENTS for item in module.KNOBS}
    visible = {name} | _transitive(name)
    for key in _knobs_read(MODULES[name]):
        assert key in owner, f"{name} reads undeclared knob {key!r}"
        assert owner[key] in visible, f"{name} reads {key!r} but does not import {owner[key]}"


def test_components_never_import_each_other():
    components = {name for name, path in MODULES.items() if _is_component(path)}
    # the nine node components + nightly, loadgen, prometheus, grafana, loadbalancer
    assert len(components) == 14
    for name in components:
        sideways = GRAPH[name] & components
        assert not sideways, f"{name} imports component(s) {sorted(sideways)}"


def test_no_import_cycle_in_deploy():
    for name in MODULES:
        assert name not in _transitive(name), f"import cycle through {name}"


def test_embedded_models_come_from_the_models_package():
    assert KNOBS["server_model"].choices == EMBEDDED
