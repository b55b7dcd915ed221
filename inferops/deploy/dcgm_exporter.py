"""dcgm_exporter on GPU nodes: NVIDIA's DCGM exporter as a systemd unit, pinned.

``container`` mode runs the pinned NGC image with docker (needs
``container_toolkit``); ``binary`` mode runs a dcgm-exporter binary from a URL +
sha256 you provide (mirror/air-gap) against DCGM from NVIDIA's CUDA repo.
After a change ``/metrics`` must show ``DCGM_FI_`` series.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import files, server, systemd
from pyinfra.operations.util import any_changed

from inferops.deploy.common import (
    install_packages,
    keep_running,
    metrics_check_command,
    template,
)
from inferops.deploy.downloads import download_verified
from inferops.deploy.gpu import enabled_on_gpu
from inferops.deploy.knobs import (
    Knob,
    boolean,
    choice,
    declare,
    image_tag,
    knob,
    listen_address,
    sha256,
    url,
)
from inferops.deploy.nvidia_repos import cuda_repo
from inferops.deploy.platform import detect

SERVICE = "inferops-dcgm-exporter"
BINARY = "/usr/local/bin/dcgm-exporter"

KNOBS = (
    Knob("dcgm_exporter", False, boolean(), "run dcgm-exporter (GPU metrics for Prometheus)"),
    Knob(
        "dcgm_exporter_mode",
        "container",
        choice("container", "binary"),
        "container: the NGC image with docker (needs container_toolkit); binary: a "
        "dcgm-exporter binary from dcgm_exporter_binary_url",
    ),
    Knob(
        "dcgm_exporter_image",
        "nvcr.io/nvidia/k8s/dcgm-exporter:3.3.8-3.6.0-ubuntu22.04",
        image_tag(),
        "dcgm-exporter image",
    ),
    Knob("dcgm_exporter_binary_url", None, url(none=True), "dcgm-exporter binary URL"),
    Knob("dcgm_exporter_binary_sha256", None, sha256(), "dcgm-exporter binary sha256"),
    Knob("dcgm_exporter_listen", ":9400", listen_address(":9400"), "listen address"),
)
DEFAULTS = declare(__name__, KNOBS)


@deploy("dcgm-exporter", data_defaults=DEFAULTS)
def dcgm_exporter():
    """Run dcgm-exporter under systemd; check it exports GPU metrics after a change."""
    if not enabled_on_gpu("dcgm_exporter", "dcgm-exporter", "dcgm-exporter"):
        return
    platform = detect(host)
    listen = knob("dcgm_exporter_listen")
    inputs = []
    if knob("dcgm_exporter_mode") == "binary":
        cuda_repo(platform)
        inputs.append(install_packages(platform, ["datacenter-gpu-manager"], name="Install DCGM"))
        systemd.service(
            name="Run nvidia-dcgm (hostengine)", service="nvidia-dcgm", running=True, enabled=True
        )
        inputs.append(
            download_verified(
                "dcgm-exporter",
                knob("dcgm_exporter_binary_url"),
                knob("dcgm_exporter_binary_sha256"),
                BINARY,
                mode="755",
            )
        )
        exec_start = f"{BINARY} -a {listen}"
        needs = ""
        attempts = 60
    else:
        port = listen.rsplit(":", 1)[1]
        bind = listen.rsplit(":", 1)[0]
        publish = f"{bind}:{port}:9400" if bind else f"{port}:9400"
        exec_start = (
            f"/usr/bin/docker run --rm --name {SERVICE} --gpus all --cap-add SYS_ADMIN "
            f"-p {publish} {knob('dcgm_exporter_image')}"
        )
        needs = "docker.service"
        attempts = 600  # first start pulls the image
    unit = files.template(
        name=f"Write {SERVICE}.service",
        src=template("dcgm-exporter.service.j2"),
        dest=f"/etc/systemd/system/{SERVICE}.service",
        mode="644",
        exec_start=exec_start,
        needs=needs,
        image=knob("dcgm_exporter_image") if needs else None,
        container=SERVICE,
    )
    inputs.append(unit)
    systemd.daemon_reload(name="Reload systemd (dcgm-exporter unit changed)", _if=unit.did_change)
    changed = any_changed(*inputs)
    keep_running(SERVICE, changed=changed)
    server.shell(
        name="Check dcgm-exporter exports GPU metrics",
        commands=[
            metrics_check_command(
                listen, "DCGM_FI_", "dcgm-exporter", attempts=attempts, unit=SERVICE
            )
        ],
        _if=changed,
    )
