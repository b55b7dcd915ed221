"""``download_verified()``: every file a component fetches is checked against a sha256
given as data, so nothing unverified is ever installed or run.

Shared by the repo keys (``nvidia_repos``, ``container_toolkit``), the release
tarballs/installers (``node_exporter``, ``python_env``) and the dcgm-exporter binary.
"""

from __future__ import annotations

from pyinfra.operations import files

from inferops.deploy.common import download_args
from inferops.deploy.layout import DOWNLOAD_DIR


def download_verified(what: str, url: str, sha256: str, dest: str, mode: str = "644"):
    """Download ``url`` to ``dest`` unless it is already there with that sha256.

    A bare file name lands in ``/opt/inferops/downloads`` (created first); proxy
    settings apply. pyinfra checks the digest after the transfer and fails the
    host on a mismatch.
    """
    if "/" not in dest:
        files.directory(name=f"Create {DOWNLOAD_DIR}", path=DOWNLOAD_DIR, mode="755")
        dest = f"{DOWNLOAD_DIR}/{dest}"
    return files.download(
        name=f"Download {what} (sha256-verified)",
        src=url,
        dest=dest,
        sha256sum=sha256,
        mode=mode,
        **download_args(),
    )
