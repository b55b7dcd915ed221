"""Grafana on a ``monitoring`` host, from ``apt.grafana.com``, provisioned from files.

- the repository's signing key is downloaded and checked against
  ``grafana_gpg_key_sha256`` (no key is trusted unverified), and the source is
  ``signed-by`` that keyring only;
- the datasource and dashboard provider YAML and the dashboards' JSON are the ones
  ``inferops monitoring render`` writes (rendered for this host by ``monitoring_files``);
- the admin password is generated on the control machine
  (``.inferops/monitoring/<host>/grafana-admin``, 0600), uploaded as a file Grafana reads
  (``GF_SECURITY_ADMIN_PASSWORD__FILE``) and applied with ``grafana cli admin
  reset-admin-password --password-from-stdin`` when it changes: never Grafana's default.

No Grafana package can be had on this project's test hosts: the component is tested at
the operation level only (``tests/deploy/cases/grafana/``, fake hosts, named as such).
"""

from __future__ import annotations

import os
import secrets

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import apt, files, server, systemd
from pyinfra.operations.util import any_changed

from inferops.deploy import ops
from inferops.deploy.common import download_args, install_packages, keep_running, require, template
from inferops.deploy.downloads import download_verified
from inferops.deploy.knobs import Knob, declare, knob, listen_address, sha256, string, url
from inferops.deploy.monitoring_files import (
    GRAFANA_PASSWORD_FILE,
    ensure_password,
    host_state_dir,
    needs_auth,
    render_files,
)
from inferops.deploy.platform import detect

KEYRING = "/etc/apt/keyrings/grafana.asc"
APT_LIST = "/etc/apt/sources.list.d/grafana.list"
PROVISIONING = "/etc/grafana/provisioning"
DASHBOARDS_DIR = "/var/lib/grafana/dashboards/inferops"
ADMIN_PASSWORD_FILE = "/etc/grafana/inferops-admin.password"
DROP_IN = "/etc/systemd/system/grafana-server.service.d/inferops.conf"
SERVICE = "grafana-server"

KNOBS = (
    Knob("grafana_apt_url", "https://apt.grafana.com", url(), "Grafana apt repo (or a mirror)"),
    Knob(
        "grafana_gpg_key_url",
        "https://apt.grafana.com/gpg.key",
        url(),
        "the repo's signing key",
    ),
    Knob(
        "grafana_gpg_key_sha256",
        None,
        sha256(),
        "sha256 of the signing key (required: the key is verified before apt trusts it)",
    ),
    Knob(
        "grafana_version",
        None,
        string(none=True, pattern=r"^[0-9][A-Za-z0-9.+~-]*$", what="a package version"),
        "pin the grafana package (e.g. 11.2.0); None: the repo's latest at first install",
    ),
    Knob("grafana_listen", "127.0.0.1:3000", listen_address("127.0.0.1:3000"), "listen address"),
)
DEFAULTS = declare(__name__, KNOBS)


@deploy("Grafana", data_defaults=DEFAULTS)
def grafana():
    """Install Grafana from apt.grafana.com and provision the inferops datasource and dashboards."""
    platform = detect(host)
    require(platform.family == "debian", "grafana", "apt.grafana.com is for Debian/Ubuntu hosts")
    digest = knob("grafana_gpg_key_sha256")
    require(
        bool(digest),
        "grafana_gpg_key_sha256",
        f"required: sha256 of {knob('grafana_gpg_key_url')} (or set grafana = false)",
    )
    rendered = render_files(grafana=True)

    key = download_verified(
        "the Grafana apt signing key", knob("grafana_gpg_key_url"), digest, dest=KEYRING
    )
    listing = files.template(
        name="Add the Grafana apt source (signed-by)",
        src=template("grafana.list.j2"),
        dest=APT_LIST,
        mode="644",
        keyring=KEYRING,
        url=knob("grafana_apt_url"),
    )
    apt.update(
        name="apt-get update (Grafana source changed)",
        _if=any_changed(key, listing),
        **download_args(),
    )
    version = knob("grafana_version")
    install_packages(
        platform, [f"grafana={version}" if version else "grafana"], name="Install grafana"
    )

    inputs = [
        files.put(
            name=f"Provision Grafana {rel}",
            src=str(rendered.out / rel),
            dest=f"{PROVISIONING}/{rel.split('/', 1)[1]}",
            user="root",
            group="grafana",
            mode="640",
        )
        for rel in ("provisioning/datasources/inferops.yml", "provisioning/dashboards/inferops.yml")
    ]
    inputs.append(
        files.sync(
            name=f"Upload the dashboards to {DASHBOARDS_DIR}",
            src=str(rendered.out / "dashboards"),
            dest=DASHBOARDS_DIR,
            mode="644",
            dir_mode="755",
            delete=True,
        )
    )
    if needs_auth():
        # Grafana's copy of the Prometheus password: read through $__file{} in the
        # datasource, so the provisioning YAML holds only the path.
        inputs.append(
            ops.put_secret(
                name="Upload Grafana's copy of the Prometheus password",
                src=str(ensure_password()[0]),
                dest=GRAFANA_PASSWORD_FILE,
                user="root",
                group="grafana",
                mode="640",
            )
        )
    admin = ops.put_secret(
        name="Upload the Grafana admin password",
        src=str(ensure_admin_password()),
        dest=ADMIN_PASSWORD_FILE,
        user="root",
        group="grafana",
        mode="640",
    )
    bind, port = knob("grafana_listen").rsplit(":", 1)
    drop_in = files.template(
        name="Configure grafana-server (listen, admin password file)",
        src=template("grafana-server.conf.j2"),
        dest=DROP_IN,
        mode="644",
        create_remote_dir=True,
        http_addr=bind,
        http_port=port,
        admin_password_file=ADMIN_PASSWORD_FILE,
    )
    systemd.daemon_reload(name="Reload systemd (grafana-server drop-in)", _if=drop_in.did_change)
    # Grafana reads datasource provisioning at start only.
    keep_running(SERVICE, changed=any_changed(drop_in, *inputs), reason="provisioning changed")
    # The password file seeds only a new database; an existing admin is reset explicitly.
    server.shell(
        name="Apply the Grafana admin password",
        commands=[
            f"grafana cli --homepath /usr/share/grafana --config /etc/grafana/grafana.ini "
            f"admin reset-admin-password --password-from-stdin < {ADMIN_PASSWORD_FILE}"
        ],
        _if=admin.did_change,
    )


def ensure_admin_password():
    """The Grafana admin password for this host, generated once (0600) on the control machine."""
    path = host_state_dir() / "grafana-admin"
    if not path.exists():
        tmp = path.parent / "grafana-admin.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(24))
        os.replace(tmp, path)
    return path
