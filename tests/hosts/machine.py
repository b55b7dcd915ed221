"""One booted test host: an overlay over the cached rootfs, run by systemd-nspawn.

Each host gets its own overlayfs (lower: the shared read-only rootfs; upper:
this host's changes), so booting four hosts costs four empty directories, not
four copies. Identity that must differ per host (hostname, machine id, SSH host
keys, address, authorized_keys) is written into the overlay before boot.

The container is ``systemd-nspawn -b --register=no --keep-unit`` (this machine
has no systemd to register with) on its own veth via ``--network-bridge``. It
runs in its own session so teardown can signal it, and a crashed run's
leftovers can be found again by their command line.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from tests.hosts.rootfs import DEPLOY_USER


@dataclass
class Host:
    name: str
    ip: str
    dir: str  # holds upper/, work/, root/ (the merged view) and console.log
    pid: int = 0
    host_key: str = ""  # "ssh-ed25519 AAAA..." for known_hosts

    @property
    def root(self) -> Path:
        return Path(self.dir) / "root"

    @property
    def console_log(self) -> Path:
        return Path(self.dir) / "console.log"

    def as_dict(self) -> dict:
        return asdict(self)


def _uid_gid(root: Path, user: str) -> tuple[int, int]:
    for line in (root / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == user:
            return int(fields[2]), int(fields[3])
    raise RuntimeError(f"user {user!r} missing from rootfs {root}")


def prepare(host: Host, lower: Path, gateway: str, pubkey: str, resolv_conf: str) -> None:
    """Mount the host's overlay and write its identity into it."""
    base = Path(host.dir)
    for sub in ("upper", "work", "root"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "mount", "-t", "overlay", "overlay", "-o",
            f"lowerdir={lower},upperdir={base / 'upper'},workdir={base / 'work'}",
            str(host.root),
        ],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    root = host.root
    (root / "etc/hostname").write_text(host.name + "\n")
    (root / "etc/hosts").write_text(f"127.0.0.1 localhost\n127.0.1.1 {host.name}\n")
    (root / "etc/machine-id").write_text(uuid.uuid4().hex + "\n")
    (root / "etc/systemd/network/10-host0.network").write_text(
        "[Match]\nName=host0\n\n[Network]\n"
        f"Address={host.ip}/24\nGateway={gateway}\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n"
    )
    resolv = root / "etc/resolv.conf"
    if resolv.is_symlink() or resolv.exists():
        resolv.unlink()
    resolv.write_text(resolv_conf)
    # Per-host SSH host keys, and their public half for the fleet's known_hosts.
    subprocess.run(["ssh-keygen", "-A", "-f", str(root)], check=True, capture_output=True)
    host.host_key = " ".join((root / "etc/ssh/ssh_host_ed25519_key.pub").read_text().split()[:2])
    uid, gid = _uid_gid(root, DEPLOY_USER)
    ssh_dir = root / "home" / DEPLOY_USER / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    (ssh_dir / "authorized_keys").write_text(pubkey.strip() + "\n")
    (ssh_dir / "authorized_keys").chmod(0o600)
    for path in (ssh_dir, ssh_dir / "authorized_keys"):
        os.chown(path, uid, gid)


def boot(host: Host, bridge: str, cgroup_procs: Path | None = None) -> None:
    """Start the container in the background; ``host.pid`` is the nspawn process.

    With ``cgroup_procs`` (a cgroup's ``cgroup.procs``), nspawn is started inside that
    cgroup, so the whole container is under its limits (``tests.hosts.cpuquota``).
    """
    cmd = [
        "systemd-nspawn",
        "--boot",
        "--register=no",
        "--keep-unit",
        f"--directory={host.root}",
        f"--machine={host.name}",
        f"--network-bridge={bridge}",
        "--console=passive",
        "--link-journal=no",
        # SIGTERM to nspawn becomes a clean poweroff inside (SIGRTMIN+4 to init).
        "--kill-signal=SIGRTMIN+4",
    ]
    log = open(host.console_log, "ab")  # handed to the child
    try:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=None if cgroup_procs is None else _joiner(cgroup_procs),
        )  # fmt: skip
    finally:
        log.close()
    host.pid = proc.pid


def _joiner(cgroup_procs: Path):
    def join() -> None:  # runs in the child, before exec: nspawn starts inside
        cgroup_procs.write_text(str(os.getpid()))

    return join


def _alive(pid: int) -> bool:
    try:
        # Our own child: ask the kernel directly. Right after fork its cmdline is
        # still Python's, so the /proc check below would call it dead.
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        pass  # not our child (a crashed run's), or already reaped
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A reused pid would not be nspawn; check before trusting it.
    return is_nspawn(pid)


def is_nspawn(pid: int, marker: str = "") -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    if not argv or not argv[0].endswith(b"systemd-nspawn"):
        return False
    return not marker or marker.encode() in argv


def wait_ssh(host: Host, timeout: float = 90.0) -> None:
    """Block until sshd on the host sends its banner, or raise with the console tail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if host.pid and not _alive(host.pid):
            raise RuntimeError(f"{host.name}: container exited during boot\n{console_tail(host)}")
        try:
            with socket.create_connection((host.ip, 22), timeout=2) as sock:
                sock.settimeout(5)
                if sock.recv(64).startswith(b"SSH-2.0"):
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{host.name}: no SSH on {host.ip}:22 after {timeout:.0f}s\n"
                       f"{console_tail(host)}")  # fmt: skip


def console_tail(host: Host, lines: int = 15) -> str:
    try:
        text = host.console_log.read_text(errors="replace")
    except OSError:
        return "(no console log)"
    return "\n".join(text.splitlines()[-lines:])


def stop(pid: int, timeout: float = 20.0) -> None:
    """Power the container off cleanly; kill its whole process group if it hangs."""
    if not pid or not _alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            _reap(pid)
            return
        _reap(pid)
        time.sleep(0.2)
    try:
        os.killpg(pid, signal.SIGKILL)  # nspawn leads its own session (start_new_session)
    except ProcessLookupError:
        pass
    for _ in range(50):
        if not _alive(pid):
            break
        _reap(pid)
        time.sleep(0.1)
    _reap(pid)


def _reap(pid: int) -> None:
    # Collect our own child's exit status so it doesn't linger as a zombie.
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def unmount_under(path: Path) -> None:
    """Unmount every mount at or below ``path`` (deepest first)."""
    prefix = str(path.resolve())
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            mounts.append(point)
    for point in sorted(mounts, key=len, reverse=True):
        if subprocess.run(["umount", point], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", point], capture_output=True)
