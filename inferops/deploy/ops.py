"""Custom idempotent operations the stock ones do not cover.

Each reads a fact first and yields nothing (``host.noop``) when the host already
matches, so a converged host reports 0 changed operations.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
import shlex
from pathlib import Path

from pyinfra import host, logger
from pyinfra.api import FileUploadCommand, QuoteString, StringCommand, operation
from pyinfra.api.exceptions import PyinfraError
from pyinfra.facts.files import File, Sha256File
from pyinfra.facts.rpm import RpmPackages
from pyinfra.operations.util import files as file_utils

from inferops.deploy import artifacts
from inferops.deploy.facts import (
    AptHolds,
    DockerImageId,
    FileText,
    PipFreeze,
    PythonPlatform,
    TreeDigest,
    normalize_dist_name,
)

_SPEC = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?(?:==(.+))?$")


def unsatisfied(specs: list[str], installed: dict[str, str]) -> list[str]:
    """Requirements (``name``, ``name[extra]``, ``name==ver``) not met by ``installed``."""
    missing = []
    for spec in specs:
        match = _SPEC.match(spec)
        if not match:
            raise ValueError(f"unsupported requirement {spec!r} (use name or name==version)")
        name, version = normalize_dist_name(match.group(1)), match.group(2)
        have = installed.get(name)
        if have is None or (version is not None and have != version):
            missing.append(spec)
    return missing


@operation()
def pip_install(pip: str, packages: list[str], extra_args: list[str] | None = None):
    """Install the pip requirements that are missing (or at another pinned version).

    + pip: path of the environment's pip
    + packages: ``name`` / ``name[extra]`` / ``name==version``
    + extra_args: e.g. ``["--upgrade-strategy", "only-if-needed"]``
    """
    missing = unsatisfied(packages, host.get_fact(PipFreeze, pip=pip))
    if not missing:
        host.noop(f"pip: {', '.join(packages)} already installed")
        return
    yield StringCommand(
        QuoteString(pip), "install", *(extra_args or []), *[QuoteString(m) for m in missing]
    )


@operation()
def install_wheel(pip: str, wheel: str, digest: str, marker: str):
    """Install an uploaded wheel unless ``marker`` already records its sha256.

    The marker is written only after pip succeeds, so an interrupted install is
    retried on the next run. Dependencies come from ``server_requirements``
    (``--no-deps``: the wheel's own list carries the load-test/report stack).
    """
    if host.get_fact(FileText, path=marker) == digest:
        host.noop(f"{wheel} already installed")
        return
    yield StringCommand(
        QuoteString(pip),
        "install",
        "--no-deps",
        "--force-reinstall",
        QuoteString(wheel),
        "&&",
        "echo",
        digest,
        ">",
        QuoteString(marker),
    )


@operation()
def run_once_per_version(command: str, marker: str, version: str):
    """Run ``command`` then record ``version`` in ``marker``; skip when the marker matches.

    For installers that have no package-manager state (Miniforge).
    """
    if host.get_fact(FileText, path=marker) == version:
        host.noop(f"{marker} already at {version}")
        return
    yield f"{command} && echo {version} > {marker}"


@operation()
def apt_hold(packages: list[str]):
    """``apt-mark hold`` the packages not held yet (pins them against unattended upgrades)."""
    held = set(host.get_fact(AptHolds))
    missing = [p for p in packages if p not in held]
    if not missing:
        host.noop(f"already held: {', '.join(packages)}")
        return
    yield StringCommand("apt-mark", "hold", *[QuoteString(p) for p in missing])


@operation()
def dnf_module_install(module: str, stream: str, package: str, version_prefix: str):
    """``dnf module install -y module:stream`` unless ``package`` is installed at the
    ``version_prefix`` already (the stream pins the driver branch)."""
    installed = host.get_fact(RpmPackages).get(package, [])
    if any(v.startswith(version_prefix) for v in installed):
        host.noop(f"{package} {', '.join(installed)} installed (stream {stream})")
        return
    yield StringCommand("dnf", "module", "install", "-y", QuoteString(f"{module}:{stream}"))


@operation()
def pip_replace(pip: str, wanted: str, other: str):
    """Make room for a conflicting flavour (``onnxruntime`` <-> ``onnxruntime-gpu``).

    Both install the same module; removing one breaks the files of the other, so
    when ``other`` is installed both go, and the locked install that follows puts
    ``wanted`` back cleanly.
    """
    installed = host.get_fact(PipFreeze, pip=pip)
    if normalize_dist_name(other) not in installed:
        host.noop(f"pip: {other} not installed")
        return
    present = [p for p in (other, wanted) if normalize_dist_name(p) in installed]
    yield StringCommand(QuoteString(pip), "uninstall", "-y", *[QuoteString(p) for p in present])


@operation()
def pip_install_locked(
    pip: str,
    lock: str,
    digest: str,
    marker: str,
    pins: dict[str, str],
    wheelhouse_lock: str | None = None,
    python: str | None = None,
    index_options: list[str] | None = None,
):
    """``pip install --require-hashes -r lock`` unless this lock is already installed.

    Installed means: ``marker`` holds the lock's sha256 (written only after pip
    succeeds, so an interrupted install is retried) and every unconditional pin is
    present at its version (so a package removed or changed by hand is put back).

    With ``wheelhouse_lock`` (the same lock on the control machine), an install first
    gets the lock's wheels for this host's interpreter (``python``, read as a fact)
    from the control machine's wheelhouse (downloaded once, hash-checked, cached),
    uploads that one zip and installs with ``--no-index`` from it: a fleet downloads
    its dependencies once instead of once per host. When the wheelhouse cannot be
    made (no index reachable from the control machine, an sdist-only package, a musl
    host), the host installs from its index as without it, and the run says so.

    + pip: path of the environment's pip
    + lock: remote path of the uploaded lock
    + digest, marker: the lock's sha256 and where it is recorded once installed
    + pins: ``{name: version}`` the environment must have
    + wheelhouse_lock, python, index_options: the local lock, the environment's python
      and the pip index options for the control machine's download
    """
    installed = host.get_fact(PipFreeze, pip=pip)
    drift = sorted(name for name, version in pins.items() if installed.get(name) != version)
    if host.get_fact(FileText, path=marker) == digest and not drift:
        host.noop(f"pip: {lock} already installed")
        return
    archive = _wheelhouse(wheelhouse_lock, python, index_options) if wheelhouse_lock else None
    if archive is None:
        yield StringCommand(
            QuoteString(pip), "install", "--require-hashes", "-r", QuoteString(lock),
            "&&", "echo", digest, ">", QuoteString(marker),
        )  # fmt: skip
        return
    remote = f"{posixpath.dirname(lock)}/wheelhouse-{digest[:12]}.zip"
    yield FileUploadCommand(
        str(archive), remote, remote_temp_filename=host.get_temp_filename(remote)
    )
    q = shlex.quote
    yield (
        f'd=$(mktemp -d) && {q(python)} -m zipfile -e {q(remote)} "$d" && '
        f'{q(pip)} install --no-index --find-links "$d" --require-hashes -r {q(lock)} && '
        f'echo {digest} > {q(marker)}; rc=$?; rm -rf "$d" {q(remote)}; exit $rc'
    )


def _wheelhouse(local_lock: str, python: str | None, index_options: list[str] | None):
    """The control machine's wheelhouse zip for this host, or None (then: install from the
    index) with a warning saying why."""
    target = host.get_fact(PythonPlatform, python=python) if python else None
    if not target:
        reason = f"{python} not there yet to read its platform from"
    elif artifacts.wheel_platforms(target) is None:
        reason = f"no manylinux wheels for {target['implementation']} on {target['libc'] or '?'}"
    else:
        try:
            return artifacts.build_wheelhouse(Path(local_lock).read_text(), target, index_options)
        except (PyinfraError, OSError) as exc:
            reason = str(exc)
    logger.warning(f"{host.print_prefix}wheelhouse skipped ({reason}): installing from the index")
    return None


@operation()
def put_secret(src: str, dest: str, user: str, group: str, mode: str):
    """Upload a secret (the bearer token) when its sha256 differs from the remote copy.

    Unlike ``files.put`` it never shows the content: with ``--diff``, pyinfra prints
    every uploaded text file line by line, which would put the secret in logs.

    + src: local file
    + dest, user, group, mode: where and how it lands on the host
    """
    with open(src, "rb") as handle:
        digest = hashlib.sha256(handle.read()).hexdigest()
    if host.get_fact(Sha256File, path=dest) != digest:
        if host.state.config.DIFF:
            host.log(f"Will upload {dest} (a secret: content not shown)", logger.info)
        yield FileUploadCommand(src, dest, remote_temp_filename=host.get_temp_filename(dest))
        yield file_utils.chown(dest, user, group)
        yield file_utils.chmod(dest, mode)
        return
    info = host.get_fact(File, path=dest) or {}
    changed = False
    if (info.get("user"), info.get("group")) != (user, group):
        changed = True
        yield file_utils.chown(dest, user, group)
    if str(info.get("mode")) != str(mode):
        changed = True
        yield file_utils.chmod(dest, mode)
    if not changed:
        host.noop(f"{dest} already up to date (secret)")


@operation()
def docker_pull(image: str):
    """``docker pull`` an image reference unless the daemon already has it.

    With a digest reference (``repo@sha256:...``) "present" means "exactly this
    image", so the pull happens once per digest, never on a service start.
    """
    if host.get_fact(DockerImageId, image=image):
        host.noop(f"{image} already pulled")
        return
    yield StringCommand("docker", "pull", QuoteString(image))


@operation()
def promote_checked(candidate: str, live: str, checks: list[str], reload: str):
    """Swap the checked ``candidate`` directory in as ``live``, then ``reload``.

    Nothing happens when both trees hold the same files. Otherwise every command in
    ``checks`` (``promtool check config``...) must pass on the candidate first: a
    rejected candidate leaves ``live`` and the running service untouched, and the next
    run tries again (the trees still differ). The swap is a rename, so the service
    never reads a half-copied tree.

    + candidate: remote directory the files were uploaded to
    + live: remote directory the service reads
    + checks: commands that must succeed on the candidate
    + reload: command that makes the running service re-read ``live`` (not a restart)
    """
    if host.get_fact(TreeDigest, path=candidate) == host.get_fact(TreeDigest, path=live):
        host.noop(f"{live} already matches {candidate}")
        return
    yield " && ".join(
        [
            *checks,
            f"rm -rf {live}.new {live}.old",
            f"cp -a {candidate} {live}.new",
            f"{{ ! test -e {live} || mv {live} {live}.old; }}",
            f"mv {live}.new {live}",
            f"rm -rf {live}.old",
            reload,
        ]
    )


@operation()
def swap_in_tested(candidate: str, live: str, test: str, reload: str):
    """Put the uploaded ``candidate`` file in place of ``live`` if ``test`` accepts the
    whole configuration with it, then ``reload``; else put the previous ``live`` back.

    For services whose checker reads the full configuration (``nginx -t``): the new
    file is tested where it will live, together with everything else the service
    loads (another site claiming the same port fails the test too). A refused
    candidate restores the previous file (or removes the new one), is never
    reloaded, and fails the run; the next run tries again (the files still differ).

    + candidate: remote path of the uploaded file
    + live: remote path the service reads
    + test: command that checks the service's whole configuration
    + reload: command that makes the running service re-read it (not a restart)
    """
    if host.get_fact(Sha256File, path=candidate) == host.get_fact(Sha256File, path=live):
        host.noop(f"{live} already matches {candidate}")
        return
    backup = f"{live}.inferops-previous"
    restore = f"{{ if test -e {backup}; then mv -f {backup} {live}; else rm -f {live}; fi; }}"
    yield " && ".join(
        [
            f"rm -f {backup}",
            f"{{ ! test -e {live} || cp -a {live} {backup}; }}",
            f"cp {candidate} {live}.new",
            f"mv -f {live}.new {live}",
            f"{{ {test} || {{ {restore}; echo '{test}: refused the new {live}; "
            f"the previous one is back' >&2; exit 1; }}; }}",
            f"rm -f {backup}",
            reload,
        ]
    )
