"""Offline validation of the rendered manifests against pinned schemas.

There is no cluster here, so the check is the schemas a cluster would apply:

* built-in kinds: ``kubernetes-validate``'s vendored OpenAPI schemas for
  ``KUBERNETES_VERSION``, in strict mode (unknown fields are errors);
* ``ServiceMonitor``: the prometheus-operator v0.80.1 CRD's schema, vendored
  in ``schemas/`` (its ``$comment`` names where it came from), strict about
  unknown fields;
* the prometheus-adapter rules: the keys its ``config.yaml`` defines.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

#: the Kubernetes minor the manifests are validated against (pinned: a newer
#: kubernetes-validate keeps older schemas, so this never moves by accident)
KUBERNETES_VERSION = "1.30"

SERVICE_MONITOR_SCHEMA = Path(__file__).parent / "schemas" / "servicemonitor-v0.80.1.json"

_ADAPTER_RULE_KEYS = {"seriesQuery", "seriesFilters", "resources", "name", "metricsQuery"}


class ManifestError(ValueError):
    """A manifest does not match its schema; the message names file and field."""


def _service_monitor(doc: dict) -> None:
    import jsonschema

    schema = json.loads(SERVICE_MONITOR_SCHEMA.read_text(encoding="utf-8"))
    errors = sorted(
        jsonschema.Draft202012Validator(schema).iter_errors(doc), key=lambda e: list(e.path)
    )
    if errors:
        first = errors[0]
        where = ".".join(str(p) for p in first.absolute_path) or "(top level)"
        raise ManifestError(f"{where}: {first.message}")


def _adapter_rules(doc: dict) -> None:
    config = yaml.safe_load(doc["data"]["config.yaml"])
    if not isinstance(config, dict) or not isinstance(config.get("rules"), list):
        raise ManifestError("config.yaml needs a list under 'rules'")
    for i, rule in enumerate(config["rules"]):
        extra = set(rule) - _ADAPTER_RULE_KEYS
        if extra:
            raise ManifestError(f"rules[{i}]: unknown key(s) {sorted(extra)}")
        for key in ("seriesQuery", "metricsQuery"):
            if not isinstance(rule.get(key), str) or not rule[key]:
                raise ManifestError(f"rules[{i}].{key} must be a non-empty string")


def validate_manifest(doc: dict) -> None:
    """Raise ManifestError unless ``doc`` is valid for its kind."""
    import kubernetes_validate

    if doc.get("kind") == "ServiceMonitor":
        _service_monitor(doc)
        return
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = ".".join(str(p) for p in exc.absolute_path) or "(top level)"
        raise ManifestError(f"{where}: {exc.message}") from None
    except kubernetes_validate.utils.SchemaNotFoundError as exc:
        raise ManifestError(str(exc)) from None
    if doc.get("kind") == "ConfigMap" and "config.yaml" in (doc.get("data") or {}):
        _adapter_rules(doc)


def validate_all(files: dict[str, dict]) -> None:
    for name, doc in files.items():
        try:
            validate_manifest(doc)
        except ManifestError as exc:
            raise ManifestError(f"{name} ({doc.get('kind')}): {exc}") from None
