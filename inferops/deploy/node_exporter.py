"""node_exporter on every node: the distro package on Debian/Ubuntu, or a pinned release
tarball (sha256-verified) elsewhere or when asked (air-gap mirrors: ``node_exporter_url``).

After any change the metrics endpoint is fetched and must contain
``node_exporter_build_info`` - a check that fails when the exporter is not serving.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import files, server, systemd
from pyinfra.operations.util import any_changed

from inferops.deploy import ops
from inferops.deploy.common import (
    install_packages,
    keep_running,
    metrics_check_command,
    require,
    template,
)
from inferops.deploy.downloads import download_verified
from inferops.deploy.knobs import (
    Knob,
    choice,
    declare,
    knob,
    listen_address,
    sha256_by_arch,
    string,
    url,
)
from inferops.deploy.layout import DOWNLOAD_DIR
from inferops.deploy.platform import detect

BINARY = "/usr/local/bin/node_exporter"
VERSION_MARKER = "/opt/inferops/node_exporter.version"
PACKAGE_SERVICE = "prometheus-node-exporter"
TARBALL_SERVICE = "node_exporter"

KNOBS = (
    Knob(
        "node_exporter_source",
        "auto",
        choice("auto", "package", "tarball"),
        "auto: the distro package on Debian/Ubuntu, the release tarball on RHEL-family",
    ),
    Knob(
        "node_exporter_version",
        "1.8.2",
        string(pattern=r"^\d+\.\d+\.\d+$", what="a version like 1.8.2"),
        "pinned node_exporter release (tarball source)",
    ),
    Knob(
        "node_exporter_url",
        "https://github.com/prometheus/node_exporter/releases/download/"
        "v{version}/node_exporter-{version}.linux-{arch}.tar.gz",
        url(),
        "tarball URL template ({version}, {arch}); point at a mirror for air-gapped fleets",
    ),
    Knob(
        "node_exporter_sha256",
        {},
        sha256_by_arch(),
        "tarball sha256 per arch ({'x86_64': ..., 'aarch64': ...}) from the release's "
        "sha256sums.txt; required for the tarball source",
    ),
    Knob("node_exporter_listen", ":9100", listen_address(":9100"), "listen address"),
)
DEFAULTS = declare(__name__, KNOBS)


@deploy("node_exporter", data_defaults=DEFAULTS)
def node_exporter():
    """Install node_exporter and run it as a systemd unit."""
    platform = detect(host)
    source = knob("node_exporter_source")
    if source == "auto":
        source = "package" if platform.family == "debian" else "tarball"
    if source == "package":
        require(
            platform.family == "debian",
            "node_exporter_source",
            "package source is Debian/Ubuntu only; use tarball",
        )
        inputs = _from_package(platform)
        service = PACKAGE_SERVICE
    else:
        inputs = _from_tarball(platform)
        service = TARBALL_SERVICE
    changed = any_changed(*inputs)
    keep_running(service, changed=changed)
    server.shell(
        name="Check node_exporter serves metrics",
        commands=[
            metrics_check_command(
                knob("node_exporter_listen"), "node_exporter_build_info", "node_exporter"
            )
        ],
        _if=changed,
    )


def _from_package(platform):
    # curl: the metrics check (this component also runs alone, without base).
    package = install_packages(
        platform, ["prometheus-node-exporter", "curl"], name="Install prometheus-node-exporter"
    )
    defaults = files.template(
        name="Configure node_exporter listen address",
        src=template("prometheus-node-exporter.default.j2"),
        dest="/etc/default/prometheus-node-exporter",
        mode="644",
        listen=knob("node_exporter_listen"),
    )
    return [package, defaults]


def _from_tarball(platform):
    version = knob("node_exporter_version")
    arch = platform.go_arch
    digest = (knob("node_exporter_sha256") or {}).get(platform.arch)
    require(bool(digest), "node_exporter_sha256", f"no sha256 for arch {platform.arch}")
    stem = f"node_exporter-{version}.linux-{arch}"
    tarball = f"{DOWNLOAD_DIR}/{stem}.tar.gz"

    # curl: files.download and the metrics check (this component also runs alone).
    install_packages(platform, ["curl", "tar"], name="Install curl and tar")
    download_verified(
        f"node_exporter {version}",
        knob("node_exporter_url").format(version=version, arch=arch),
        digest,
        dest=f"{stem}.tar.gz",
    )
    install = ops.run_once_per_version(
        name=f"Install node_exporter {version} to {BINARY}",
        command=(
            f"tar -xzf {tarball} -C {DOWNLOAD_DIR} && "
            f"install -m 755 {DOWNLOAD_DIR}/{stem}/node_exporter {BINARY}"
        ),
        marker=VERSION_MARKER,
        version=version,
    )
    server.user(
        name="Create node_exporter user",
        user="node_exporter",
        system=True,
        shell="/usr/sbin/nologin",
        ensure_home=False,
    )
    unit = files.template(
        name="Write node_exporter.service",
        src=template("node_exporter.service.j2"),
        dest=f"/etc/systemd/system/{TARBALL_SERVICE}.service",
        mode="644",
        binary=BINARY,
        listen=knob("node_exporter_listen"),
    )
    systemd.daemon_reload(name="Reload systemd (node_exporter unit changed)", _if=unit.did_change)
    return [install, unit]
