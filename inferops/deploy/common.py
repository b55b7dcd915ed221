"""Small helpers shared by the components: proxy env, package install, local state dir,
units kept running. Declares the knobs every component reads: ``proxy``, ``apt_cache_time``,
``fact_batching``."""

from __future__ import annotations

import os
from pathlib import Path

from pyinfra import host, logger
from pyinfra.api.exceptions import PyinfraError
from pyinfra.facts.deb import DebPackages
from pyinfra.facts.rpm import RpmPackages
from pyinfra.operations import apt, dnf, systemd

from inferops.deploy.knobs import Knob, boolean, declare, integer, knob, proxy_map
from inferops.deploy.platform import Platform

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = REPO_ROOT / "templates" / "deploy"


def template(name: str) -> str:
    """Absolute path of a file under ``templates/deploy/``."""
    return str(TEMPLATES / name)


KNOBS = (
    Knob(
        "proxy",
        None,
        proxy_map(),
        "HTTP(S) proxy for every download: {'http': ..., 'https': ..., 'no_proxy': ...}",
    ),
    Knob(
        "apt_cache_time",
        3600,
        integer(0),
        "seconds an apt index stays fresh: apt-get update runs only when a package is "
        "missing AND the index is older than this",
    ),
    Knob(
        "fact_batching",
        True,
        boolean(),
        "read the facts a deploy read last time in one SSH command per host and stage, "
        "reused until this run changes the host (inferops.deploy.factbatch); false: one "
        "round trip per fact read, as stock pyinfra",
    ),
)
DEFAULTS = declare(__name__, KNOBS)


def proxy_env() -> dict[str, str]:
    """``_env`` for operations that download: data ``proxy`` -> http(s)_proxy variables.

    Both spellings are set because curl reads the lower-case ones and many
    other tools only the upper-case ones.
    """
    proxy = knob("proxy") or {}
    env = {}
    for key, names in (
        ("http", ("http_proxy", "HTTP_PROXY")),
        ("https", ("https_proxy", "HTTPS_PROXY")),
        ("no_proxy", ("no_proxy", "NO_PROXY")),
    ):
        if proxy.get(key):
            for name in names:
                env[name] = proxy[key]
    return env


def download_args() -> dict:
    """Global arguments for an operation that downloads (only ``_env`` when a proxy is set)."""
    env = proxy_env()
    return {"_env": env} if env else {}


def missing_packages(platform: Platform, packages: list[str]) -> list[str]:
    """Packages (``name`` or ``name=version``) not installed at that version yet."""
    fact = DebPackages if platform.family == "debian" else RpmPackages
    installed = host.get_fact(fact) or {}
    missing = []
    for spec in packages:
        name, _, version = spec.partition("=")
        have = installed.get(name)
        if not have or (version and not any(v.startswith(version) for v in have)):
            missing.append(spec)
    return missing


def install_packages(platform: Platform, packages: list[str], name: str, **op_kwargs):
    """Install packages with apt or dnf; refresh the index only when something is missing.

    ``apt-get update`` is guarded by ``cache_time`` and only requested when a
    package is actually missing, so a converged host reports no change.
    """
    if platform.family == "debian":
        missing = missing_packages(platform, packages)
        return apt.packages(
            name=name,
            packages=packages,
            update=bool(missing),
            cache_time=knob("apt_cache_time"),
            no_recommends=op_kwargs.pop("no_recommends", True),
            **download_args(),
            **op_kwargs,
        )
    # dnf pins with "-" (name-version), apt with "=".
    op_kwargs.pop("no_recommends", None)
    return dnf.packages(
        name=name,
        packages=[p.replace("=", "-", 1) for p in packages],
        **download_args(),
        **op_kwargs,
    )


def local_state_dir(*parts: str) -> Path:
    """``.inferops/<parts>`` on the control machine (tokens, wheel and model caches).

    Relative to the current directory (where ``pyinfra`` runs); a ``.gitignore``
    inside keeps secrets out of version control.
    """
    root = Path(os.environ.get("INFEROPS_STATE_DIR", ".inferops")).resolve()
    root.mkdir(parents=True, exist_ok=True)
    ignore = root / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n")
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def require(condition: bool, key: str, problem: str) -> None:
    """Stop during preparation (before any change) with ``host: key: problem``."""
    if not condition:
        raise PyinfraError(f"{host.name}: {key}: {problem}")


def notice(message: str) -> None:
    """A no-op the operator must see (skipped GPU parts, reboot needed): shown even without -v."""
    if not getattr(host.state, "print_noop_info", False):
        logger.warning(f"{host.print_prefix}{message}")
    host.noop(message)


def keep_running(service: str, *, changed: bool, reason: str = "changed") -> None:
    """Enable and start ``service``; restart it only when one of its inputs changed."""
    systemd.service(name=f"Enable and start {service}", service=service, running=True, enabled=True)
    systemd.service(
        name=f"Restart {service} ({reason})",
        service=service,
        running=True,
        restarted=True,
        _if=changed,
    )


def metrics_check_command(
    listen: str, marker: str, what: str, *, attempts: int = 30, unit: str | None = None
) -> str:
    """Poll ``listen``'s /metrics until a line starts with ``marker``; exit 1 if it never does.

    With ``unit``, the failure path prints that unit's journal tail first.
    """
    bind, port = listen.rsplit(":", 1)
    url = f"http://{bind or '127.0.0.1'}:{port}/metrics"
    journal = f"journalctl -u {unit} -n 40 --no-pager; " if unit else ""
    return (
        f"for i in $(seq {attempts}); do "
        f"curl -fsS {url} 2>/dev/null | grep -q '^{marker}' && "
        f"echo '{what} serving {url}' && exit 0; sleep 1; done; "
        f"{journal}echo '{what} not serving {url}' >&2; exit 1"
    )


def import_check_command(python: str, module: str) -> str:
    """A command that exits non-zero, with Python's error, if ``module`` cannot be imported."""
    return f"{python} -c 'import {module}; print(\"{module}\", {module}.__version__)'"
