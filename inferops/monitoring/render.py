"""Write every monitoring file into one folder: exactly what the deploy uploads.

    prometheus.yml
    rules/<name>.yml, rules/<name>_test.yml
    alertmanager.yml
    provisioning/datasources/inferops.yml, provisioning/dashboards/inferops.yml
    dashboards/<name>.json

The folder is built beside ``out`` and swapped in whole, so a reader never sees a
half-written set and an old render never leaves a stale rule file behind. A folder
that is not an earlier render (no marker file) is never replaced.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from inferops.exitcodes import UsageError
from inferops.monitoring import configs, dashboards, ruletests
from inferops.monitoring.capacity import Capacity
from inferops.monitoring.rules import Knobs, RuleFile, rule_files
from inferops.monitoring.targets import Host, inference_hosts, scrape_targets

MARKER = ".inferops-monitoring"
HEADER = (
    "# Rendered by `inferops monitoring render`: edit thresholds.toml or the knobs, not this.\n"
)


@dataclass(frozen=True)
class Rendered:
    out: Path
    files: list[Path]
    notes: list[str]  #: things the user should know (printed by the CLI)


def capacity_profiles(hosts: list[Host], capacities: list[Capacity]) -> dict[str, str]:
    """Host name -> capacity profile: host data ``capacity_profile``; with a single
    ``--capacity`` run, hosts that set none take its profile."""
    profiles = {}
    for host in inference_hosts(hosts):
        chosen = host.data.get("capacity_profile")
        if chosen is None and len(capacities) == 1:
            chosen = capacities[0].profile
        if chosen is not None:
            profiles[host.name] = str(chosen)
    return profiles


def _yaml(doc: dict) -> str:
    return yaml.safe_dump(doc, sort_keys=False, width=1000, allow_unicode=True)


def rule_file_text(rule_file: RuleFile, runbook_base: str) -> str:
    """The rule file as YAML, with the comments PyYAML cannot write (capacity provenance)."""
    lines = [HEADER.rstrip("\n")]
    lines += [f"# {note}" for note in rule_file.notes]
    lines.append("groups:")
    groups = [
        (f"inferops-{rule_file.name}-recording", [(r.rule(), None) for r in rule_file.recordings]),
        (
            f"inferops-{rule_file.name}-alerts",
            [(a.rule(runbook_base), a.comment) for a in rule_file.alerts],
        ),
    ]
    for name, rules in groups:
        if not rules:
            continue
        lines += [f"  - name: {name}", "    rules:"]
        for rule, comment in rules:
            if comment:
                lines.append(f"      # {comment}")
            lines += ["      " + line for line in _yaml([rule]).splitlines()]
    return "\n".join(lines) + "\n"


def render(
    out: Path,
    *,
    hosts: list[Host],
    limits: dict[str, float],
    capacities: list[Capacity],
    knobs: Knobs,
    config_knobs: configs.ConfigKnobs,
    alertmanagers: list[str],
) -> Rendered:
    notes = []
    profiles = capacity_profiles(hosts, capacities)
    by_profile: dict[str, list[str]] = {}
    for host_name, profile in profiles.items():
        by_profile.setdefault(profile, []).append(host_name)
    for cap in capacities:
        if cap.profile not in by_profile:
            notes.append(
                f"capacity run {cap.run} (profile {cap.profile!r}) matches no inference host: "
                f'set capacity_profile = "{cap.profile}" in that host\'s data'
            )
    files = rule_files(limits, knobs, capacities, by_profile)
    for rule_file in files:
        notes += rule_file.notes
    targets = scrape_targets(hosts, alertmanagers, profiles)
    if not config_knobs.webhooks:
        notes.append("alertmanager.yml has no receiver (add --webhook URL): alerts go nowhere")

    documents: dict[str, str] = {}
    rule_names = []
    for rule_file in files:
        documents[f"rules/{rule_file.name}.yml"] = rule_file_text(rule_file, knobs.runbook_base)
        test = ruletests.rule_test(rule_file, knobs.rate_window, knobs.runbook_base)
        documents[f"rules/{rule_file.name}_test.yml"] = HEADER + _yaml(test)
        rule_names.append(f"{rule_file.name}.yml")
    prometheus = configs.prometheus_config(targets, rule_names, alertmanagers, config_knobs)
    documents["prometheus.yml"] = HEADER + _yaml(prometheus)
    documents["alertmanager.yml"] = HEADER + _yaml(configs.alertmanager_config(config_knobs))
    documents["provisioning/datasources/inferops.yml"] = HEADER + _yaml(
        configs.grafana_datasource(config_knobs)
    )
    documents["provisioning/dashboards/inferops.yml"] = HEADER + _yaml(
        configs.grafana_dashboard_provider(config_knobs)
    )
    for name, board in dashboards.dashboards(limits, capacities).items():
        documents[f"dashboards/{name}.json"] = json.dumps(board, indent=2, sort_keys=True) + "\n"
    written = _write_folder(out, documents)
    return Rendered(out, written, notes)


def _write_folder(out: Path, documents: dict[str, str]) -> list[Path]:
    out = Path(out)
    if out.exists():
        if not out.is_dir():
            raise UsageError(f"--out {out}: exists and is not a folder")
        if any(out.iterdir()) and not (out / MARKER).is_file():
            raise UsageError(
                f"--out {out}: not empty and not an earlier render; choose a new folder"
            )
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for rel, text in {**documents, MARKER: "inferops monitoring render\n"}.items():
            path = staging / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "w") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
        staging.chmod(0o755)
        old = None
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
            os.replace(out, old / "render")
        os.replace(staging, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return [out / rel for rel in documents]
