"""Package sources the GPU components share: NVIDIA's CUDA network repo (apt via the
``cuda-keyring`` package, dnf via a signed ``.repo``) and Debian's non-free components.

Each source is set up at most once per host per run, and every download is
checksum-verified. ``apt-get update`` runs only when a source changed.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.operations import apt, files
from pyinfra.operations.util import any_changed

from inferops.deploy.common import download_args, require, template
from inferops.deploy.downloads import download_verified
from inferops.deploy.knobs import Knob, declare, knob, sha256, string, url
from inferops.deploy.layout import DOWNLOAD_DIR
from inferops.deploy.platform import Platform

CUDA_APT_LIST = "/etc/apt/sources.list.d/inferops-cuda.list"
CUDA_KEYRING = "/usr/share/keyrings/cuda-archive-keyring.gpg"  # installed by cuda-keyring
NONFREE_LIST = "/etc/apt/sources.list.d/inferops-debian-nonfree.list"

KNOBS = (
    Knob(
        "cuda_repo_url",
        "https://developer.download.nvidia.com/compute/cuda/repos",
        url(),
        "NVIDIA's CUDA repo base; point at a mirror for air-gapped fleets",
    ),
    Knob(
        "cuda_keyring_version",
        "1.1-1",
        string(pattern=r"^[\w.+~-]+$", what="a version"),
        "cuda-keyring package version",
    ),
    Knob(
        "cuda_keyring_sha256",
        None,
        sha256(),
        "sha256 of cuda-keyring_<version>_all.deb from that repo (required for the apt repo)",
    ),
    Knob(
        "cuda_rpm_key_url",
        "{repo}/{distro}/{arch}/D42D0685.pub",
        string(
            pattern=r"^(\{repo\}|https?://|file://)\S+$",
            what="a URL or a {repo}/... template",
        ),
        "RHEL-family: CUDA RPM signing key URL template ({repo}, {distro}, {arch})",
    ),
    Knob(
        "cuda_rpm_key_sha256",
        None,
        sha256(),
        "sha256 of the CUDA RPM signing key (required for the dnf repo)",
    ),
    Knob(
        "debian_mirror_url",
        "http://deb.debian.org/debian",
        url(),
        "Debian 12 distro driver: where contrib/non-free/non-free-firmware come from",
    ),
    Knob(
        "debian_security_url",
        "http://security.debian.org/debian-security",
        url(),
        "Debian security mirror",
    ),
)
DEFAULTS = declare(__name__, KNOBS)


def _once(name: str, build):
    """Run ``build`` once per (run, host, name); later calls get the first result.

    The memo lives on the pyinfra State, so a new run (or test) starts afresh.
    """
    done = host.state.__dict__.setdefault("_inferops_once", {})
    key = (host.name, name)
    if key not in done:
        done[key] = build()
    return done[key]


def resolve_source(platform: Platform, knob_name: str) -> str:
    """``auto`` -> ``cuda_repo`` when that repo's checksum is configured (always on RHEL),
    else the distro's packages."""
    source = knob(knob_name)
    if source == "auto":
        if platform.family == "rhel":
            source = "cuda_repo"
        else:
            source = "cuda_repo" if knob("cuda_keyring_sha256") else "distro"
    if platform.family == "rhel":
        require(source == "cuda_repo", knob_name, "RHEL-family hosts only support source cuda_repo")
    return source


def prepare_source(platform: Platform, knob_name: str) -> str:
    """Resolve ``knob_name`` (``nvidia_driver_source``/``cuda_source``) and set up the package
    source it names: NVIDIA's CUDA repo, or Debian's non-free components."""
    source = resolve_source(platform, knob_name)
    if source == "cuda_repo":
        cuda_repo(platform)
    elif platform.distro == "debian":
        debian_nonfree(platform)
    return source


def repo_base(platform: Platform) -> str:
    return f"{knob('cuda_repo_url')}/{platform.cuda_repo_distro}/{platform.cuda_repo_arch}"


def cuda_repo(platform: Platform):
    """Set up NVIDIA's CUDA repo; returns an operation whose change means "index refreshed"."""
    return _once("cuda_repo", lambda: _cuda_repo(platform))


def _cuda_repo(platform: Platform):
    if platform.family == "rhel":
        return _cuda_dnf_repo(platform)
    digest = knob("cuda_keyring_sha256")
    require(bool(digest), "cuda_keyring_sha256", "required to use NVIDIA's CUDA apt repo")
    version = knob("cuda_keyring_version")
    deb = f"{DOWNLOAD_DIR}/cuda-keyring_{version}_all.deb"
    download_verified(
        f"cuda-keyring {version}",
        f"{repo_base(platform)}/cuda-keyring_{version}_all.deb",
        digest,
        dest=f"cuda-keyring_{version}_all.deb",
    )
    keyring = apt.deb(
        name="Install cuda-keyring (NVIDIA repo signing key)", src=deb, **download_args()
    )
    # Our own list (mirror-aware, signed-by the keyring); the package's own list would
    # point at NVIDIA directly and duplicate the source, so it goes.
    listing = files.template(
        name="Add the CUDA apt source (signed-by)",
        src=template("cuda.list.j2"),
        dest=CUDA_APT_LIST,
        mode="644",
        keyring=CUDA_KEYRING,
        url=repo_base(platform),
    )
    files.file(
        name="Remove cuda-keyring's own source list",
        path=f"/etc/apt/sources.list.d/cuda-{platform.cuda_repo_distro}-"
        f"{platform.cuda_repo_arch}.list",
        present=False,
    )
    return apt.update(
        name="apt-get update (CUDA source changed)",
        _if=any_changed(keyring, listing),
        **download_args(),
    )


def _cuda_dnf_repo(platform: Platform):
    digest = knob("cuda_rpm_key_sha256")
    require(bool(digest), "cuda_rpm_key_sha256", "required to use NVIDIA's CUDA dnf repo")
    key_path = f"/etc/pki/rpm-gpg/inferops-cuda-{platform.cuda_repo_distro}.pub"
    key_url = knob("cuda_rpm_key_url").format(
        repo=knob("cuda_repo_url"),
        distro=platform.cuda_repo_distro,
        arch=platform.cuda_repo_arch,
    )
    download_verified("the CUDA RPM signing key", key_url, digest, dest=key_path)
    return files.template(
        name="Add the CUDA dnf repo (gpgcheck)",
        src=template("cuda.repo.j2"),
        dest=f"/etc/yum.repos.d/inferops-cuda-{platform.cuda_repo_distro}.repo",
        mode="644",
        url=repo_base(platform),
        key_path=key_path,
    )


def debian_nonfree(platform: Platform):
    """Enable contrib/non-free/non-free-firmware on Debian (the distro NVIDIA driver)."""
    return _once("debian_nonfree", lambda: _debian_nonfree(platform))


def _debian_nonfree(platform: Platform):
    listing = files.template(
        name="Enable Debian contrib, non-free, non-free-firmware",
        src=template("debian-nonfree.list.j2"),
        dest=NONFREE_LIST,
        mode="644",
        mirror=knob("debian_mirror_url"),
        security=knob("debian_security_url"),
        codename=platform.codename or "bookworm",
    )
    return apt.update(
        name="apt-get update (Debian components changed)",
        _if=listing.did_change,
        **download_args(),
    )
