"""The cached Debian 12 root filesystem every test host boots from.

Built once with ``debootstrap`` and kept under ``/var/cache/inferops/test-hosts/``
(override with ``INFEROPS_TEST_HOSTS_CACHE``) so later runs on the same machine
reuse it. The directory name carries a key derived from the suite, mirror,
package list and customisation version: change any of them and the next run
builds a fresh rootfs beside the old one.

The image is meant to look like a minimal cloud server: systemd, sshd, python3,
sudo, curl and CA certificates, a ``deploy`` user with passwordless sudo, and
nothing the deploys are supposed to install themselves.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
# What a minimal cloud image has and a deploy may assume; deliberately no
# python3-venv, build tools or node_exporter: those are the deploys' job.
PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "libpam-systemd",
    "openssh-server",
    "python3",
    "ca-certificates",
    "iproute2",
    "iputils-ping",
    "sudo",
    "curl",
    "gnupg",
    "procps",
    "netbase",
    "less",
    "apt-utils",
)
# Bump when customise() changes so the cache key changes with it.
CUSTOMISE_VERSION = "3"
DEPLOY_USER = "deploy"
# The host's intercepting egress proxy CAs; without them pip/HTTPS fails inside.
HOST_CAS = Path("/usr/local/share/ca-certificates")

SOURCES = f"""\
deb {MIRROR} {SUITE} main
deb {MIRROR} {SUITE}-updates main
deb http://deb.debian.org/debian-security {SUITE}-security main
"""


def cache_root() -> Path:
    return Path(os.environ.get("INFEROPS_TEST_HOSTS_CACHE", "/var/cache/inferops/test-hosts"))


def cache_key() -> str:
    blob = "\n".join([SUITE, MIRROR, CUSTOMISE_VERSION, *sorted(PACKAGES)])
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def rootfs_path() -> Path:
    return cache_root() / f"bookworm-{cache_key()}"


def ensure_rootfs(log=print) -> Path:
    """Return the cached rootfs, building it first if this key has none yet.

    The build happens in a temporary directory beside the cache and is renamed
    into place only when complete, so a crashed build never leaves a
    half-populated rootfs that a later run would trust.
    """
    target = rootfs_path()
    if (target / ".inferops-complete").exists():
        return target
    cache_root().mkdir(parents=True, exist_ok=True)
    # One builder at a time: a concurrent `make hosts` and pytest share the cache.
    lock = open(cache_root() / ".build.lock", "w")  # held until return
    try:
        import fcntl

        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / ".inferops-complete").exists():
            return target
        # Holding the lock, any other build dir is a crashed builder's leftover.
        for stale in cache_root().glob(".build-*"):
            shutil.rmtree(stale, ignore_errors=True)
        log(f"building Debian {SUITE} rootfs in {target} (debootstrap, a few minutes)")
        work = Path(tempfile.mkdtemp(prefix=".build-", dir=cache_root()))
        try:
            root = work / "rootfs"
            subprocess.run(
                [
                    "debootstrap",
                    "--variant=minbase",
                    f"--include={','.join(PACKAGES)}",
                    SUITE,
                    str(root),
                    MIRROR,
                ],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            customise(root)
            (root / ".inferops-complete").write_text(cache_key() + "\n")
            if target.exists():  # an incomplete leftover from an older crash
                shutil.rmtree(target)
            root.rename(target)
        except subprocess.CalledProcessError as exc:
            err = (exc.stderr or b"").decode(errors="replace").strip().splitlines()[-5:]
            raise RuntimeError(f"debootstrap failed: {' | '.join(err)}") from exc
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return target
    finally:
        lock.close()


def _chroot(root: Path, *cmd: str) -> None:
    subprocess.run(["chroot", str(root), *cmd], check=True, capture_output=True)


def customise(root: Path) -> None:
    """Turn a fresh debootstrap into a generic server image shared by all hosts.

    Everything per-host (hostname, address, SSH host keys, authorized_keys,
    machine id) is written later into each host's own overlay.
    """
    (root / "etc/apt/sources.list").write_text(SOURCES)
    # Per-host identity must not be baked into the shared image.
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (root / "etc/machine-id").write_text("")
    (root / "etc/hostname").write_text("localhost\n")
    for ca in HOST_CAS.glob("*.crt"):
        shutil.copy2(ca, root / "usr/local/share/ca-certificates" / ca.name)
    _chroot(root, "update-ca-certificates")
    _chroot(root, "useradd", "--create-home", "--shell", "/bin/bash", DEPLOY_USER)
    sudoers = root / "etc/sudoers.d" / DEPLOY_USER
    sudoers.write_text(f"{DEPLOY_USER} ALL=(ALL) NOPASSWD:ALL\n")
    sudoers.chmod(0o440)
    _chroot(root, "systemctl", "enable", "systemd-networkd", "ssh")
    # No getty on the (passive) console; it would only spin.
    _chroot(root, "systemctl", "mask", "console-getty.service", "getty@.service")
    # Debootstrap keeps every downloaded .deb; a cloud image would not.
    for deb in (root / "var/cache/apt/archives").glob("*.deb"):
        deb.unlink()
