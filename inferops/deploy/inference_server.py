"""inference_server: the reference server (or NVIDIA Triton, or vLLM) as a hardened systemd unit.

How the pieces get onto the host:

- the inferops package: a wheel built on the control machine
  (``python -m pip wheel --no-deps``, cached per source digest), uploaded with
  ``files.put`` and pip-installed into the environment;
- the model: an embedded model built locally with ``inferops.models.build`` or a
  user ``.onnx`` (``server_model_path``), stored by version and sha256 under
  ``/opt/inferops/models/<name>/<version>-<sha12>/model.onnx`` (``model_store``); the
  server reads ``<name>/current/model.onnx`` and a new version is an atomic flip of
  that link plus a restart of this unit alone. ``server_model_keep`` versions stay,
  so a rollback has nothing to upload;
- the config: ``/etc/inferops/server.env`` read by the unit via ``EnvironmentFile=``;
- the bearer token (when the bind address is not loopback): generated once on the
  control machine under ``.inferops/tokens/<host>`` (0600; ``<server_token_name>``
  when hosts share one, as behind a load balancer), uploaded 0600 root:root
  without ever printing it (not even with ``--diff``) and handed to the server by
  systemd's ``LoadCredential=``.

vLLM (``server_runtime = "vllm"``, GPU nodes only) is ``vllm_server``'s unit with the
same token, restart and check; the check also asks ``/health`` and ``/v1/models`` with
the token.

Triton binds loopback unless ``triton_insecure`` (it has no authentication); its
image is pinned by digest and pulled once by the deploy, never on a service start.

The service is restarted only when one of those changed (the model: when ``current``
now points elsewhere), then checked (active
and accepting TCP connections) with a command that fails loudly with the journal.
"""

from __future__ import annotations

import os
from pathlib import Path

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import files, server, systemd
from pyinfra.operations.util import any_changed

from inferops.deploy import artifacts, model_store, ops
from inferops.deploy.common import keep_running, require, template
from inferops.deploy.facts import NvidiaGpus
from inferops.deploy.gpu import gpu_or_skip
from inferops.deploy.knobs import (
    Knob,
    absolute_path,
    boolean,
    choice,
    declare,
    image_digest,
    integer,
    knob,
    local_file,
    string,
)
from inferops.deploy.layout import CONFIG_DIR, MODEL_STORE, OPT_DIR, STATE_DIR, env_prefix
from inferops.deploy.server_rules import (
    BACKENDS,
    bind_address,
    delay_ms,
    env_map,
    env_quote,
    is_loopback,
    port,
    positive_int,
)
from inferops.deploy.suite import install_suite
from inferops.deploy.vllm_server import SERVICE as VLLM_SERVICE
from inferops.deploy.vllm_server import install_vllm, write_unit
from inferops.models import EMBEDDED

SERVICE = "inferops-server"
UNIT_PATH = f"/etc/systemd/system/{SERVICE}.service"
ENV_PATH = f"{CONFIG_DIR}/server.env"
TOKEN_PATH = f"{CONFIG_DIR}/token"
TRITON_SERVICE = "inferops-triton"
VERIFY_SCRIPT = f"{OPT_DIR}/bin/inferops-verify"

_NAME = r"^[A-Za-z0-9_.-]+$"
KNOBS = (
    Knob(
        "server_runtime",
        "inferops",
        choice("inferops", "triton", "vllm"),
        "the reference server, Triton in its NGC container (needs container_toolkit), or "
        "vLLM's OpenAI-compatible server (GPU nodes; see vllm_*)",
    ),
    Knob(
        "server_model",
        "mlp",
        choice(*EMBEDDED),
        "embedded model built on the control machine and served",
    ),
    Knob(
        "server_model_path",
        None,
        local_file(),
        "your own .onnx on the control machine (takes precedence over server_model)",
    ),
    Knob(
        "server_model_name",
        None,
        string(none=True, pattern=_NAME, what="a model name"),
        "name the model is served under (default: server_model or the file's stem)",
    ),
    Knob(
        "server_model_version",
        None,
        string(none=True, pattern=model_store.VERSION_PATTERN, what="a version label"),
        "version label of the served model (letters, digits, . _ + -); it names one content: "
        "its directory is <version>-<sha12>, and None stores it as <sha12> alone",
    ),
    Knob(
        "server_model_source",
        None,
        local_file(),
        "the .onnx for server_model_version, set by `inferops rollout` for the version it "
        "rolls out (takes precedence over server_model_path and server_model; the served "
        "name stays the inventory's)",
    ),
    Knob(
        "server_model_keep",
        3,
        integer(2, 100),
        "model versions kept on the node, the served one included (most recently served "
        "first): at least 2, so a rollback is a link flip",
    ),
    Knob(
        "server_bind",
        "0.0.0.0",
        bind_address(),
        "listen address (an IP or 'localhost'); not loopback => a bearer token is generated "
        "and required",
    ),
    Knob("server_port", 8000, port(), "listen port"),
    Knob(
        "server_backend",
        "onnxruntime",
        choice(*BACKENDS),
        "inference backend",
    ),
    Knob("server_max_batch_size", 8, positive_int(), "dynamic batching: max batch"),
    Knob(
        "server_max_queue_delay_ms",
        2.0,
        delay_ms(),
        "dynamic batching: longest a request waits for others (ms, 0-60000)",
    ),
    Knob(
        "server_extra_env",
        {},
        env_map(),
        "extra environment for the server process (written to server.env, one line each)",
    ),
    Knob(
        "server_token_dir",
        None,
        string(none=True),
        "where bearer tokens live on the control machine (0700 dir, 0600 files); "
        "None: .inferops/tokens under the directory pyinfra runs in",
    ),
    Knob(
        "server_token_name",
        None,
        string(none=True, pattern=_NAME, what="a token name"),
        "which bearer token the server requires: the file of that name in server_token_dir "
        "(None: the host's own name). Hosts behind one load balancer share one name, so one "
        "client token works through it",
    ),
    Knob(
        "server_allow_fault_injection",
        False,
        boolean(),
        "TEST FLEETS ONLY: honour a test fault a model declares in its metadata "
        "(inferops.fault.*, see docs/server.md); rollout tests use it for a version that "
        "breaks under sustained traffic",
    ),
    Knob(
        "server_verify",
        True,
        boolean(),
        "after a change, wait until the unit is active and the port answers",
    ),
    Knob(
        "triton_image",
        None,
        image_digest(none=True),
        "Triton NGC image pinned by digest, required with server_runtime = triton: "
        "nvcr.io/nvidia/tritonserver:24.08-py3@sha256:<digest> (from `docker buildx imagetools "
        "inspect` or your registry); pulled once, never on a service start",
    ),
    Knob(
        "triton_insecure",
        False,
        boolean(),
        "publish Triton (which has no authentication) on a non-loopback server_bind; without "
        "it Triton must bind loopback, behind your own authenticating proxy",
    ),
    Knob(
        "triton_model_repository",
        "/var/lib/inferops/triton",
        absolute_path(),
        "Triton model repository on the host",
    ),
)
DEFAULTS = declare(__name__, KNOBS)


def model_source() -> tuple[Path, str]:
    """(local .onnx path, served name) from the data."""
    user_path = knob("server_model_path")
    name = knob("server_model_name") or (Path(user_path).stem if user_path else None)
    name = name or knob("server_model")
    for key in ("server_model_source", "server_model_path"):
        given = knob(key)
        if given:
            path = Path(given).expanduser()
            require(path.is_file(), key, f"no such local file: {given}")
            require(path.suffix == ".onnx", key, f"not an .onnx file: {given}")
            return path, name
    return artifacts.build_model(knob("server_model")), name


def probe_address(bind: str) -> str:
    """Where a local health probe connects for a given bind address."""
    if bind in ("0.0.0.0", ""):
        return "127.0.0.1"
    if bind == "::":
        return "::1"
    return bind


@deploy("inferops inference server", data_defaults=DEFAULTS)
def inference_server():
    """Install, configure and (re)start the server; verify it after any change."""
    runtime = knob("server_runtime")
    if runtime == "triton":
        _triton()
    elif runtime == "vllm":
        if gpu_or_skip("the vLLM server"):
            _vllm()
    else:
        _inferops()


def _upload_model(dest_dir: str, filename: str):
    path, name = model_source()
    user = knob("service_user")
    files.directory(name=f"Create {dest_dir}", path=dest_dir, user="root", group=user, mode="750")
    put = files.put(
        name=f"Upload model {name}",
        src=str(path),
        dest=f"{dest_dir}/{filename or name + '.onnx'}",
        user="root",
        group=user,
        mode="640",
    )
    return put, name


def _token():
    """Upload (or remove) the bearer token; returns (op, token path or None).

    The file is root-only: systemd hands it to the unprivileged server through
    ``LoadCredential=``, and its content never appears in pyinfra's output.
    """
    bind = knob("server_bind")
    if is_loopback(bind):
        op = files.file(name="No token on a loopback-only server", path=TOKEN_PATH, present=False)
        return op, None
    given = knob("server_token_dir")
    token_dir = Path(os.path.expanduser(given)).resolve() if given else None
    local = artifacts.ensure_token(knob("server_token_name") or host.name, token_dir)
    op = ops.put_secret(
        name="Upload the bearer token",
        src=str(local),
        dest=TOKEN_PATH,
        user="root",
        group="root",
        mode="600",
    )
    return op, TOKEN_PATH


def _inferops():
    user = knob("service_user")
    prefix = env_prefix()
    wheel_op = install_suite()

    switch_op, model_path, store, target = _model_version(user)
    token_op, token_path = _token()
    env_op = files.template(
        name="Write /etc/inferops/server.env",
        src=template("server.env.j2"),
        dest=ENV_PATH,
        user="root",
        group=user,
        mode="640",
        model=model_path,
        model_name=model_source()[1],
        bind=knob("server_bind"),
        port=knob("server_port"),
        backend=knob("server_backend"),
        max_batch_size=knob("server_max_batch_size"),
        max_queue_delay_ms=knob("server_max_queue_delay_ms"),
        allow_fault_injection=knob("server_allow_fault_injection"),
        extra_env={k: env_quote(v) for k, v in knob("server_extra_env").items()},
    )
    unit_op = files.template(
        name=f"Write {UNIT_PATH}",
        src=template("inferops-server.service.j2"),
        dest=UNIT_PATH,
        mode="644",
        user_name=user,
        inferops_bin=f"{prefix}/bin/inferops",
        env_path=ENV_PATH,
        state_dir=STATE_DIR,
        nofile=knob("nofile_limit"),
        # GPUs are device nodes: a private /dev would hide them, so GPU nodes get a closed
        # device policy that allows only the NVIDIA character devices instead.
        gpu=bool(host.get_fact(NvidiaGpus)),
        token_path=token_path,
    )
    _run_and_verify(SERVICE, unit_op, [unit_op, env_op, switch_op, wheel_op, token_op])
    # after the check: a version that failed to start leaves every older one in place
    model_store.prune_versions(
        name=f"Keep {knob('server_model_keep')} model versions",
        store=store,
        keep=knob("server_model_keep"),
        protect=[target],
    )


def _model_version(user: str):
    """Store this version beside the others and point ``current`` at it.

    Returns (the switch operation, the path the server loads, the model's directory,
    the version directory). Only the switch restarts the server: storing alone
    changes nothing it reads.
    """
    path, name = model_source()
    digest = artifacts.sha256_file(path)
    store = f"{MODEL_STORE}/{name}"
    target = model_store.version_dir(knob("server_model_version"), digest)
    for directory in (MODEL_STORE, store):
        files.directory(
            name=f"Create {directory}", path=directory, user="root", group=user, mode="750"
        )
    model_store.store_version(
        name=f"Store model version {target}",
        store=store,
        version=target,
        src=str(path),
        sha256=digest,
        group=user,
    )
    switch_op = model_store.switch_version(
        name=f"Serve model version {target}", store=store, version=target
    )
    return switch_op, f"{store}/{model_store.CURRENT}/{model_store.MODEL_FILE}", store, target


def _run_and_verify(
    service: str,
    unit_op,
    inputs,
    attempts: int = 60,
    owner_port=True,
    paths=("/v2/health/ready",),
    token_path=None,
) -> None:
    changed = any_changed(*inputs)
    systemd.daemon_reload(name="Reload systemd (unit changed)", _if=unit_op.did_change)
    keep_running(service, changed=changed, reason="unit, env, model, wheel or token changed")
    if knob("server_verify"):
        files.put(
            name="Upload the readiness checker",
            src=template("inferops-verify.py"),
            dest=VERIFY_SCRIPT,
            mode="755",
        )
        port = knob("server_port")
        server.shell(
            name=f"Check {service} is up and listening",
            commands=[
                verify_command(
                    service,
                    probe_address(knob("server_bind")),
                    port,
                    attempts,
                    owner_port=owner_port,
                    paths=paths,
                    token_path=token_path,
                )
            ],
            _if=changed,
        )


def verify_command(
    service: str,
    address: str,
    port: int,
    attempts: int = 60,
    owner_port: bool = True,
    paths=("/v2/health/ready",),
    token_path: str | None = None,
) -> str:
    """Run the uploaded checker: the unit must stay active on one PID, answer every
    ``GET <path>`` with 200 (``/v2/health/ready``: KServe v2, served by inferops and Triton;
    vLLM: ``/health`` and ``/v1/models``) - with the bearer token read on the host from
    ``token_path``, never put on the command line - and, with ``owner_port``, own the
    listening socket itself: a crash-looping server or another daemon on the port fails
    the run, with status and journal printed."""
    hostport = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    urls = " ".join(f"--url http://{hostport}{path}" for path in paths)
    command = f"python3 {VERIFY_SCRIPT} --unit {service}.service {urls} --attempts {attempts}"
    if token_path:
        command += f" --token-file {token_path}"
    return command + (f" --port {port}" if owner_port else "")


def _triton():
    """Triton in its NGC container under systemd (docker + NVIDIA container toolkit)."""
    repo = knob("triton_model_repository")
    path, name = model_source()
    model_dir = f"{repo}/{name}/1"
    model_op, _ = _upload_model(model_dir, "model.onnx")
    config_op = files.template(
        name=f"Write Triton config for {name}",
        src=template("triton-config.pbtxt.j2"),
        dest=f"{repo}/{name}/config.pbtxt",
        mode="644",
        model_name=name,
        max_batch_size=knob("server_max_batch_size"),
        max_queue_delay_us=int(knob("server_max_queue_delay_ms") * 1000),
    )
    files.directory(name=f"Open {repo} to the container", path=repo, mode="755")
    image = knob("triton_image")
    require(bool(image), "triton_image", "required with server_runtime = triton (pin by digest)")
    pull_op = ops.docker_pull(name="Pull the Triton image (once per digest)", image=image)
    unit_op = files.template(
        name=f"Write the {TRITON_SERVICE} unit",
        src=template("inferops-triton.service.j2"),
        dest=f"/etc/systemd/system/{TRITON_SERVICE}.service",
        mode="644",
        image=image,
        model_repository=repo,
        bind=knob("server_bind"),
        port=knob("server_port"),
    )
    # The image is pulled above, never at start (--pull=never); loading models still
    # takes a while. docker-proxy owns the published port, not the unit's cgroup: no owner check.
    _run_and_verify(
        TRITON_SERVICE,
        unit_op,
        [unit_op, config_op, model_op, pull_op],
        attempts=300,
        owner_port=False,
    )


def _vllm():
    """vLLM's OpenAI server under systemd, with the node's token (``vllm_server``)."""
    install_op = install_vllm()
    token_op, token_path = _token()
    unit_op, launcher_op = write_unit(
        user=knob("service_user"),
        bind=knob("server_bind"),
        port=knob("server_port"),
        token_path=token_path,
        nofile=knob("nofile_limit"),
    )
    # Weights load (and maybe download) before the port opens: allow 15 minutes.
    _run_and_verify(
        VLLM_SERVICE,
        unit_op,
        [unit_op, launcher_op, install_op, token_op],
        attempts=900,
        paths=("/health", "/v1/models"),
        token_path=token_path,
    )
