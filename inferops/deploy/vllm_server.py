"""vllm_server: vLLM's OpenAI-compatible server as a hardened systemd unit on GPU nodes
(``server_runtime = "vllm"``, dispatched from ``inference_server``).

- vLLM is pip-installed at a pinned version (``vllm_version``) into its own venv
  (``vllm_venv``, built from the node environment's Python). It is not hash-locked: vLLM
  pins its own torch/CUDA wheels, and installing them into the hash-locked inferops env
  would fight that lock on every run. The install is a no-op when the venv already has
  that version.
- the unit runs ``vllm serve <vllm_model> --host <bind> --port <port> <vllm_args...>``.
  The bearer token is the node's (same file, same ``LoadCredential=``); a small wrapper
  reads the credential into ``VLLM_API_KEY`` (which vLLM reads like ``--api-key``), so the
  token never lands in the process's argv where every local user could read it.
- GPU only: without an NVIDIA GPU the component is skipped with the shared message.

This module only declares the vLLM knobs and writes the vLLM-specific files; the token,
restart and readiness check are ``inference_server``'s, shared with the other runtimes.
"""

from __future__ import annotations

from pyinfra.operations import files, pip

from inferops.deploy import ops
from inferops.deploy.common import download_args, require, template
from inferops.deploy.knobs import Check, Knob, absolute_path, declare, knob, string
from inferops.deploy.layout import OPT_DIR, STATE_DIR, env_python

SERVICE = "inferops-vllm"
UNIT_PATH = f"/etc/systemd/system/{SERVICE}.service"
LAUNCHER = f"{OPT_DIR}/bin/inferops-vllm-launch"


def _arg_list(value) -> str | None:
    """``vllm_args``: a list of single-line, non-empty strings (each one argv word)."""
    if not isinstance(value, (list, tuple)):
        return f"expected a list of strings, got {type(value).__name__} {value!r}"
    for item in value:
        if not isinstance(item, str) or not item.strip():
            return f"expected a list of non-empty strings, found {item!r}"
        if any(ord(c) < 32 or ord(c) == 127 for c in item):
            return f"control character (newline?) in argument {item!r}"
        if item.split("=", 1)[0] in ("--api-key", "--host", "--port"):
            return f"{item!r} is set by the deploy (token, server_bind, server_port)"
    return None


KNOBS = (
    Knob(
        "vllm_version",
        "0.6.3",
        string(pattern=r"^[0-9][A-Za-z0-9.+!-]*$", what="a version"),
        "vLLM release pip-installed into vllm_venv (server_runtime = vllm; not hash-locked)",
    ),
    Knob(
        "vllm_venv",
        f"{OPT_DIR}/vllm",
        absolute_path(),
        "the venv vLLM lives in (built from the node environment's Python)",
    ),
    Knob(
        "vllm_model",
        None,
        string(none=True, pattern=r"^[^\s]+$", what="a Hugging Face model id or a host path"),
        "model vLLM serves, required with server_runtime = vllm: a Hugging Face id "
        "(downloaded on the first start into /var/lib/inferops/huggingface) or a path on the host",
    ),
    Knob(
        "vllm_args",
        [],
        Check(_arg_list),
        "extra `vllm serve` engine arguments, one argv word per item "
        '(e.g. ["--max-model-len", "4096", "--gpu-memory-utilization", "0.9"])',
    ),
)
DEFAULTS = declare(__name__, KNOBS)


def systemd_word(word: str) -> str:
    """One ExecStart= argument, double-quoted for systemd: no specifier (%), variable ($)
    or quote in user data is interpreted."""
    escaped = word.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("%", "%%").replace("$", "$$") + '"'


def install_vllm():
    """The venv and pinned vLLM in it; returns the install operation."""
    venv = knob("vllm_venv")
    pip.virtualenv(name=f"Create the vLLM venv {venv}", path=venv, python=env_python(), venv=True)
    return ops.pip_install(
        name=f"Install vllm=={knob('vllm_version')}",
        pip=f"{venv}/bin/pip",
        packages=[f"vllm=={knob('vllm_version')}"],
        **download_args(),
    )


def write_unit(user: str, bind: str, port: int, token_path: str | None, nofile: int):
    """The launcher and the unit; returns (unit op, launcher op)."""
    model = knob("vllm_model")
    require(bool(model), "vllm_model", "required with server_runtime = vllm")
    # Checked again here (validate_inventory already did in the deploys) because a stray
    # newline would become a line of its own in the unit file.
    extra = knob("vllm_args")
    problem = _arg_list(extra)
    require(problem is None, "vllm_args", problem or "")
    launcher_op = files.put(
        name="Upload the vLLM launcher",
        src=template("inferops-vllm-launch.sh"),
        dest=LAUNCHER,
        mode="755",
    )
    words = [model, "--host", bind, "--port", str(port), *extra]
    unit_op = files.template(
        name=f"Write {UNIT_PATH}",
        src=template("inferops-vllm.service.j2"),
        dest=UNIT_PATH,
        mode="644",
        user_name=user,
        state_dir=STATE_DIR,
        launcher=LAUNCHER,
        vllm_bin=f"{knob('vllm_venv')}/bin/vllm",
        serve_args=" ".join(systemd_word(w) for w in words),
        token_path=token_path,
        nofile=nofile,
    )
    return unit_op, launcher_op
