"""``inferops model compare``: run a reference and a candidate on the same inputs and measure the drift.

ONNX files run in ONNX Runtime (CPU); OpenVINO IR (``.xml``) runs in OpenVINO
with ``INFERENCE_PRECISION_HINT=f32`` (it would otherwise pick bf16 on this
class of CPU, and the comparison would measure bf16, not the profile).

Which layers drift most: for a QDQ candidate, ONNX Runtime's ``qdq_loss_debug``
matches each quantised activation with the reference's and ranks them by
signal-to-quantisation-noise ratio (SQNR, dB; lower is worse). Other ONNX
candidates (dynamic INT8) are matched by tensor name. OpenVINO IR has no
per-tensor debug output here, which the record says.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from inferops.exitcodes import UsageError
from inferops.models import accuracy, samples

#: Samples per inference call.
BATCH = 32
#: Samples used for the per-layer drift (every intermediate tensor is kept in memory).
LAYER_SAMPLES = 16
#: Layers listed, worst first.
WORST_LAYERS = 5


class Runner:
    """One model loaded in its engine: ``run(feeds) -> {output name: array}``."""

    def __init__(self, path: Path, threads: int = 1):
        self.path = Path(path)
        self.engine = "openvino" if self.path.suffix == ".xml" else "onnxruntime"
        self.specs = samples.input_specs(self.path)
        try:
            if self.engine == "openvino":
                self._load_openvino(threads)
            else:
                self._load_onnxruntime(threads)
        except UsageError:
            raise
        except Exception as exc:  # each engine raises its own types for a bad file
            raise UsageError(
                f"model {self.path}: {self.engine} cannot load it ({samples.first_line(exc)})"
            ) from None

    def _load_onnxruntime(self, threads: int) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        self.output_names = [o.name for o in session.get_outputs()]
        self.infer = lambda feeds: session.run(self.output_names, feeds)

    def _load_openvino(self, threads: int) -> None:
        import openvino as ov

        core = ov.Core()
        config = {
            "INFERENCE_PRECISION_HINT": "f32",
            "INFERENCE_NUM_THREADS": threads,
            "PERFORMANCE_HINT": "LATENCY",
        }
        compiled = core.compile_model(core.read_model(str(self.path)), "CPU", config)
        request = compiled.create_infer_request()
        self.output_names = [port.any_name for port in compiled.outputs]
        self._ports = compiled.outputs

        def run(feeds):
            results = request.infer({k: np.ascontiguousarray(v) for k, v in feeds.items()})
            return [np.array(results[port]) for port in self._ports]

        self.infer = run

    def output_aliases(self) -> dict[str, set[str]]:
        """Every name of each output (OpenVINO gives a port all the names folded into it)."""
        if self.engine == "openvino":
            return {p.any_name: set(p.get_names()) for p in self._ports}
        return {name: {name} for name in self.output_names}

    def run_all(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """All samples through the model in batches; outputs concatenated along the first axis."""
        size = BATCH if all(s.shape and s.shape[0] < 0 for s in self.specs) else 1
        chunks: list[list[np.ndarray]] = [[] for _ in self.output_names]
        for feeds in samples.batches(inputs, size):
            try:
                results = self.infer(feeds)
            except Exception as exc:
                raise UsageError(
                    f"model {self.path}: inference failed ({samples.first_line(exc)})"
                ) from None
            for i, result in enumerate(results):
                chunks[i].append(np.asarray(result))
        return {
            name: np.concatenate(parts)
            for name, parts in zip(self.output_names, chunks, strict=True)
        }


def load_samples(ref: Runner, spec: str, seed: int = samples.EVALUATION_SEED):
    """``--samples FILE|N``: a file read and checked against REF's inputs, or N generated samples."""
    if spec.isdigit():
        count = int(spec)
        return samples.generate(ref.specs, count, seed), {
            "source": "generated",
            "distribution": "uniform(-1, 1)",
            "seed": seed,
        }
    return samples.read(Path(spec), ref.specs, "samples"), {"source": str(spec)}


def compare(
    reference: Path,
    candidate: Path,
    sample_spec: str,
    *,
    task: str = "auto",
    layers: bool = True,
    threads: int = 1,
) -> dict:
    """The accuracy record of ``candidate`` against ``reference`` (see :mod:`accuracy`)."""
    from inferops.models.optimize import sha256_file

    ref = Runner(reference, threads)
    cand = Runner(candidate, threads)
    _check_same_inputs(ref, cand)
    inputs, origin = load_samples(ref, sample_spec)
    ref_out = ref.run_all(inputs)
    cand_out = _rename_outputs(cand.run_all(inputs), cand, ref)
    record = {
        "reference": {
            "path": str(reference),
            "sha256": sha256_file(reference),
            "engine": ref.engine,
        },
        "candidate": {
            "path": str(candidate),
            "sha256": sha256_file(candidate),
            "engine": cand.engine,
            "precision_hint": "f32" if cand.engine == "openvino" else None,
        },
        "samples": {"count": samples.count(inputs), "sha256": samples.digest(inputs), **origin},
        **accuracy.summarise(ref_out, cand_out, task),
    }
    if layers:
        record["layers"] = layer_drift(ref, cand, inputs)
    return record


def _check_same_inputs(ref: Runner, cand: Runner) -> None:
    ref_names = sorted(s.name for s in ref.specs)
    cand_names = sorted(s.name for s in cand.specs)
    if ref_names != cand_names:
        raise UsageError(
            f"models take different inputs: reference {', '.join(ref_names)}, "
            f"candidate {', '.join(cand_names)}"
        )
    cand_shapes = {s.name: s.shape for s in cand.specs}
    for spec in ref.specs:
        other = cand_shapes[spec.name]
        if len(other) != len(spec.shape) or any(
            a >= 0 and b >= 0 and a != b for a, b in zip(spec.shape, other, strict=False)
        ):
            raise UsageError(
                f"models take different inputs: {spec.name!r} is {_dims(spec.shape)} in the "
                f"reference, {_dims(other)} in the candidate"
            )


def _dims(shape: tuple[int, ...]) -> str:
    return "x".join("?" if d < 0 else str(d) for d in shape)


def _rename_outputs(outputs: dict, cand: Runner, ref: Runner) -> dict:
    """Name the candidate's outputs as the reference does (OpenVINO may pick another alias)."""
    aliases = cand.output_aliases()
    renamed = {}
    for name, value in outputs.items():
        own = [r for r in ref.output_names if r in aliases.get(name, {name})]
        renamed[own[0] if own else name] = value
    return renamed


def layer_drift(ref: Runner, cand: Runner, inputs: dict[str, np.ndarray]) -> dict:
    """The intermediate tensors that drift most from the reference, worst (lowest SQNR) first."""
    if cand.engine != "onnxruntime" or ref.engine != "onnxruntime":
        return {"method": None, "worst": [], "note": "per-layer drift needs two ONNX models"}
    import onnx
    from onnxruntime.quantization import qdq_loss_debug as qdq

    subset = {name: a[:LAYER_SAMPLES] for name, a in inputs.items()}
    is_qdq = any(
        n.op_type == "QuantizeLinear"
        for n in onnx.load(str(cand.path), load_external_data=False).graph.node
    )
    with tempfile.TemporaryDirectory(prefix="inferops-drift-") as tmp:
        acts = {}
        for role, path in (("reference", ref.path), ("candidate", cand.path)):
            augmented = Path(tmp) / f"{role}.onnx"
            qdq.modify_model_output_intermediate_tensors(str(path), str(augmented))
            reader = _Reader(subset)
            acts[role] = qdq.collect_activations(str(augmented), reader)
    if is_qdq:
        matched = qdq.create_activation_matching(acts["candidate"], acts["reference"])
        pairs = {n: (m["float"], m["post_qdq"]) for n, m in matched.items() if m.get("float")}
        method = "onnxruntime.quantization.qdq_loss_debug (QDQ activations vs reference)"
    else:
        common = set(acts["reference"]) & set(acts["candidate"])
        pairs = {
            n: (acts["reference"][n], acts["candidate"][n])
            for n in common
            if [a.shape for a in acts["reference"][n]] == [a.shape for a in acts["candidate"][n]]
        }
        method = "tensors of the same name in both models"
    sqnr = {n: qdq.compute_signal_to_quantization_noice_ratio(r, c) for n, (r, c) in pairs.items()}
    worst = sorted(sqnr.items(), key=lambda kv: kv[1])[:WORST_LAYERS]
    return {
        "method": method,
        "samples": samples.count(subset),
        "tensors_matched": len(sqnr),
        "worst": [{"tensor": n, "sqnr_db": round(v, 2)} for n, v in worst],
    }


class _Reader:
    """A CalibrationDataReader over a sample set, one sample per call."""

    def __init__(self, inputs: dict[str, np.ndarray]):
        self._feeds = iter(list(samples.batches(inputs, 1)))

    def get_next(self):
        return next(self._feeds, None)

    def __iter__(self):
        return self

    def __next__(self):
        feed = self.get_next()
        if feed is None:
            raise StopIteration
        return feed


def render(record: dict) -> str:
    """The human-readable summary printed by ``inferops model compare``."""
    s = record["samples"]
    origin = (
        f"generated {s['distribution']}, seed {s['seed']}"
        if s.get("source") == "generated"
        else s["source"]
    )
    lines = [
        f"reference  {record['reference']['path']} ({record['reference']['engine']})",
        f"candidate  {record['candidate']['path']} ({record['candidate']['engine']})",
        f"samples    {s['count']} ({origin})",
    ]
    for name, m in record["outputs"].items():
        line = (
            f"output {name}: max |err| {m['max_abs_error']:.4g}, mean |err| "
            f"{m['mean_abs_error']:.4g}, cosine mean {m['cosine_mean']:.6f} (min {m['cosine_min']:.6f})"
        )
        if "top1_agreement" in m:
            line += f", top-1 agreement {m['top1_agreement']:.2%}"
        lines.append(line)
    agreement = record["agreement"]
    lines.append(
        f"agreement  {agreement['value']:.4%} ({agreement['metric']} on {agreement['output']})"
    )
    if agreement.get("note"):
        lines.append(f"note       {agreement['note']}")
    drift = record.get("layers")
    if drift and drift.get("worst"):
        worst = ", ".join(f"{w['tensor']} {w['sqnr_db']:.1f} dB" for w in drift["worst"])
        lines.append(f"drift      lowest SQNR: {worst}")
    elif drift:
        lines.append(f"drift      {drift.get('note', 'no matching tensors')}")
    return "\n".join(lines)
