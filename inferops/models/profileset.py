"""A set of optimisation profiles of one model, ready to serve side by side.

``inferops bench --sweep --profiles fp32,int8-static,openvino --model cnn`` asks
this module for each profile's file (built with :func:`optimize.optimize`, or a
file the user made and names with ``--profile-file NAME=PATH``), the engine that
serves it and its accuracy against FP32 (:func:`compare.compare`), before any
load runs. Each profile's run folder then gets two files beside the sweep
(docs/run-format.md):

* ``accuracy.json``: the ``inferops model compare`` record against FP32 (none for FP32);
* ``model-profile.json``: what was served (file, size, sha256, engine, recipe
  sidecar) and the CPU's flags, so the report can name them next to the figures.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from inferops.exitcodes import UsageError
from inferops.models import EMBEDDED, cpuflags, resolve, samples

#: The reference and the profiles of ``inferops model optimize`` a CPU can serve, in
#: the order they are measured (``tensorrt`` needs a GPU and its own server).
NAMES: tuple[str, ...] = ("fp32", "int8-dynamic", "int8-static", "openvino", "openvino-int8")
#: What the report calls them.
TITLES: dict[str, str] = {
    "fp32": "FP32 (ONNX Runtime)",
    "int8-dynamic": "INT8 (dynamic)",
    "int8-static": "INT8 (static, QDQ)",
    "openvino": "OpenVINO (FP32)",
    "openvino-int8": "OpenVINO INT8 (NNCF)",
}
PROFILE_FILE = "model-profile.json"
ACCURACY_FILE = "accuracy.json"
SCHEMA = 1
#: Generated held-out samples for the accuracy comparison of an embedded model.
DEFAULT_ACCURACY_SAMPLES = "1000"


@dataclass
class Prepared:
    """One profile ready to serve: its file, the engine, and its accuracy against FP32."""

    name: str
    path: Path
    backend: str
    recipe: dict | None = None  # the optimize sidecar (None: FP32 or a file without one)
    accuracy: dict | None = None  # compare record against FP32 (None for FP32)
    notes: list[str] = field(default_factory=list)

    @property
    def files(self) -> list[Path]:
        return (
            [self.path, self.path.with_suffix(".bin")]
            if self.path.suffix == ".xml"
            else [self.path]
        )

    @property
    def bytes(self) -> int:
        return sum(p.stat().st_size for p in self.files)


def parse_names(text: str) -> list[str]:
    """``fp32,int8-static,openvino`` (or ``all``) -> names; exit 2 for an unknown or repeated one."""
    if text.strip() == "all":
        import importlib.util

        # "all" is what this machine can make: openvino-int8 needs NNCF
        return [n for n in NAMES if n != "openvino-int8" or importlib.util.find_spec("nncf")]
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise UsageError("--profiles: give profile names, e.g. fp32,int8-static,openvino")
    for name in names:
        if name not in NAMES:
            raise UsageError(
                f"--profiles: unknown profile {name!r}; choose from {', '.join(NAMES)} (or all)"
            )
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise UsageError(f"--profiles: {repeated[0]} is named twice")
    return names


def parse_files(items: list[str], names: list[str]) -> dict[str, Path]:
    """``--profile-file NAME=PATH`` (repeatable): a profile already made, served as given."""
    files: dict[str, Path] = {}
    for item in items:
        name, sep, path = item.partition("=")
        name = name.strip()
        if not sep or not name or not path.strip():
            raise UsageError(
                f"--profile-file {item!r}: expected NAME=PATH, e.g. int8-static=m.onnx"
            )
        if name not in names:
            raise UsageError(f"--profile-file {name}: not one of --profiles ({', '.join(names)})")
        if name in files:
            raise UsageError(f"--profile-file {name}: given twice")
        file = Path(path.strip()).expanduser()
        if not file.is_file():
            raise UsageError(f"--profile-file {name}: no such file {file}")
        want = ".xml" if name.startswith("openvino") else ".onnx"
        if file.suffix != want:
            raise UsageError(f"--profile-file {name}: expected a {want} file, got {file.name}")
        files[name] = file
    return files


def engine_for(path: Path) -> str:
    """The server backend that runs a profile file: OpenVINO for an IR, else ONNX Runtime."""
    return "openvino" if Path(path).suffix == ".xml" else "onnxruntime"


def check_inputs(
    model: str, names: list[str], calibration: Path | None, accuracy_samples: str | None
) -> tuple[Path, str]:
    """The source model, calibration and held-out files checked (ONNX only, no engine
    started): ``(source path, accuracy samples)``; every problem is a UsageError."""
    from inferops.models.optimize import _load_onnx

    source = resolve(model)
    _load_onnx(source)  # a bad source model is exit 2 here, whatever the profiles
    embedded = model in EMBEDDED and not Path(model).is_file()
    if accuracy_samples is None:
        if not embedded:
            raise UsageError(
                "--accuracy-samples FILE is needed for a model of your own: held-out inputs "
                "(.npy/.npz/.jsonl) to compare each profile with FP32 on"
            )
        accuracy_samples = DEFAULT_ACCURACY_SAMPLES
    if calibration is not None and not any(n in ("int8-static", "openvino-int8") for n in names):
        raise UsageError("--calibration applies to int8-static and openvino-int8 profiles only")
    specs = samples.input_specs(source)
    if calibration is not None:  # a wrong shape is exit 2 now, not after other profiles
        samples.read(Path(calibration), specs, "calibration")
    if not str(accuracy_samples).isdigit():
        samples.read(Path(accuracy_samples), specs, "accuracy samples")
    return source, str(accuracy_samples)


def prepare(
    model: str,
    names: list[str],
    workdir: Path,
    *,
    files: dict[str, Path] | None = None,
    calibration: Path | None = None,
    accuracy_samples: str | None = None,
    say=print,
) -> list[Prepared]:
    """Each named profile of ``model``, built into ``workdir`` unless ``files`` gives it,
    with its accuracy against FP32. Every usage error (bad model, calibration file of the
    wrong shape, a real model without samples) is raised before anything is served."""
    from inferops.models.compare import compare
    from inferops.models.optimize import optimize, sidecar_path, suffix_for

    files = dict(files or {})
    source, accuracy_samples = check_inputs(model, names, calibration, accuracy_samples)
    prepared: list[Prepared] = []
    for name in names:
        if name == "fp32":
            path = files.get(name, source)
            prepared.append(Prepared(name, path, engine_for(path)))
            continue
        if name in files:
            path = files[name]
            sidecar = sidecar_path(path)
            recipe = json.loads(sidecar.read_text()) if sidecar.is_file() else None
            note = [] if recipe else [f"given as {path}; no {sidecar.name} recipe beside it"]
            prepared.append(Prepared(name, path, engine_for(path), recipe, notes=note))
            continue
        say(f"profile {name}: optimising {model}")
        out = workdir / f"{source.stem}-{name}{suffix_for(name)}"
        needs_calibration = name in ("int8-static", "openvino-int8")
        recipe = optimize(model, name, out, calibration=calibration if needs_calibration else None)
        prepared.append(Prepared(name, out, engine_for(out), recipe, notes=list(recipe["notes"])))
    reference = files.get("fp32", source)
    for item in prepared:
        if item.name == "fp32":
            continue
        say(f"profile {item.name}: comparing with FP32 on {accuracy_samples} samples")
        item.accuracy = compare(reference, item.path, accuracy_samples, layers=False)
    return prepared


def profile_record(item: Prepared, *, source: Path, server: dict) -> dict:
    """``model-profile.json``: what was served, how it was made, on which CPU."""
    from inferops.models.optimize import sha256_file

    cpu = cpuflags.read_cpu()
    return {
        "schema": SCHEMA,
        "profile": item.name,
        "title": TITLES[item.name],
        "model": {
            "path": str(item.path),
            "bytes": item.bytes,
            "sha256": sha256_file(item.path),
            "engine": item.backend,
        },
        "source": {"path": str(source), "bytes": source.stat().st_size},
        "recipe": item.recipe,
        "cpu": cpu.as_record(),
        "vnni": cpu.vnni,
        "int8_plan": cpuflags.int8_plan(cpu).as_record(),
        "server": server,
        "notes": item.notes,
    }


def read_record(run_dir: Path) -> tuple[dict | None, dict | None]:
    """``(model-profile.json, accuracy.json)`` of a run folder; None where absent.

    A present but unreadable file is exit 2 naming it (the report would otherwise
    recommend a profile whose accuracy it could not read).
    """
    found = []
    for name in (PROFILE_FILE, ACCURACY_FILE):
        path = Path(run_dir) / name
        if not path.is_file():
            found.append(None)
            continue
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(f"{path}: not readable JSON ({exc})") from None
        if not isinstance(data, dict):
            raise UsageError(f"{path}: expected a JSON object")
        found.append(data)
    profile, accuracy = found
    if profile is not None and profile.get("profile") not in NAMES:
        raise UsageError(
            f"{Path(run_dir) / PROFILE_FILE}: unknown profile {profile.get('profile')!r}"
        )
    return profile, accuracy
