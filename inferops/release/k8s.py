"""Kubernetes manifests sized from measured runs.

What a platform engineer would otherwise hand-write after reading the sizing
report, generated from the same numbers so they can't drift apart:

* ``replicas`` is the report's N+1 for the target rate at the SLO;
* the HPA's per-pod target is the measured max QPS at the SLO x (1 - headroom),
  the rate at which the report says a node is "full";
* CPU and memory requests come from the peaks the run recorded.

Everything here is plain data (dicts ready for YAML); ``k8s_validate`` checks
it against pinned schemas and ``k8s_cli`` writes it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

#: metric the HPA scales on, served by prometheus-adapter from the server's
#: own ``inferops_requests_total`` counter (see ``adapter_rules``)
QPS_METRIC = "inferops_requests_per_second"

#: container port every server kind listens on (the deploys use it too)
HTTP_PORT = 8000


@dataclass(frozen=True)
class ServerKind:
    """How one kind of inference server is probed and started in a pod."""

    name: str
    image: str
    ready_path: str
    live_path: str
    args: tuple[str, ...]
    metrics_path: str = "/metrics"


#: Images are examples to pin: a user overrides ``--image`` with a digest.
SERVER_KINDS: dict[str, ServerKind] = {
    "inferops": ServerKind(
        name="inferops",
        image="inferops/server:0.1.0",
        ready_path="/v2/health/ready",
        live_path="/v2/health/live",
        # non-loopback bind is allowed because the token comes from the Secret
        args=(
            "serve",
            "--model",
            "/models/model.onnx",
            "--host",
            "0.0.0.0",
            "--port",
            str(HTTP_PORT),
        ),
    ),
    "triton": ServerKind(
        name="triton",
        image="nvcr.io/nvidia/tritonserver:24.08-py3",
        ready_path="/v2/health/ready",
        live_path="/v2/health/live",
        args=("tritonserver", "--model-repository=/models", f"--http-port={HTTP_PORT}"),
    ),
    "vllm": ServerKind(
        name="vllm",
        image="vllm/vllm-openai:v0.6.3",
        ready_path="/health",
        live_path="/health",
        args=("--port", str(HTTP_PORT)),
    ),
}


@dataclass(frozen=True)
class Sizing:
    """The numbers the manifests are derived from (all from the sizing report)."""

    run: str  # run folder the capacity was measured in (written into annotations)
    model: str
    max_qps_at_slo: float
    headroom: float
    target_qps: float
    slo_p99_ms: float
    nodes: int  # nodes needed at the target (the report's N)
    cpu_cores_peak: float | None  # measured peak, cores
    memory_bytes_peak: float | None  # measured peak, bytes
    gpus: int = 0

    @property
    def replicas(self) -> int:
        """N+1, exactly as the report proposes: survive one pod down."""
        return self.nodes + 1

    @property
    def qps_per_pod_target(self) -> float:
        return self.max_qps_at_slo * (1 - self.headroom)


@dataclass(frozen=True)
class RenderOptions:
    kind: str = "inferops"
    image: str | None = None
    namespace: str = "inference"
    name: str | None = None
    token_secret: str = "inferops-token"  # Secret holding the bearer token (never inlined)
    startup_seconds: int = 600  # how long a slow model load may take before liveness counts
    max_replicas_factor: float = 3.0  # HPA ceiling, as a multiple of the sized replicas
    extra_labels: dict[str, str] = field(default_factory=dict)


def _cpu_quantity(cores: float) -> str:
    """Millicores, rounded up to the next 50 m so a request is never below the peak."""
    milli = max(100, int(math.ceil(cores * 1000 / 50.0)) * 50)
    return f"{milli}m"


def _memory_quantity(num_bytes: float) -> str:
    """Mebibytes, rounded up to the next 64 Mi."""
    mib = max(128, int(math.ceil(num_bytes / 2**20 / 64.0)) * 64)
    return f"{mib}Mi"


def resources(sizing: Sizing) -> dict:
    """Requests from measured peaks; GPUs in limits only (the device plugin's rule)."""
    requests: dict[str, str] = {}
    limits: dict[str, str | int] = {}
    if sizing.cpu_cores_peak is not None:
        requests["cpu"] = _cpu_quantity(sizing.cpu_cores_peak)
    if sizing.memory_bytes_peak is not None:
        requests["memory"] = _memory_quantity(sizing.memory_bytes_peak)
        # a memory limit protects the node; 1.5x the measured peak leaves room for spikes
        limits["memory"] = _memory_quantity(sizing.memory_bytes_peak * 1.5)
    if sizing.gpus:
        limits["nvidia.com/gpu"] = sizing.gpus
    out: dict = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def _probe(path: str, period: int, failures: int) -> dict:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def _names(sizing: Sizing, opts: RenderOptions) -> tuple[str, dict[str, str]]:
    name = opts.name or f"inferops-{sizing.model}".lower().replace("_", "-")
    labels = {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/component": "inference-server",
        "app.kubernetes.io/managed-by": "inferops",
        **opts.extra_labels,
    }
    return name, labels


def _selector(labels: dict[str, str]) -> dict[str, str]:
    return {"app.kubernetes.io/name": labels["app.kubernetes.io/name"]}


def _sizing_annotations(sizing: Sizing) -> dict[str, str]:
    return {
        "inferops.dev/sized-from": sizing.run,
        "inferops.dev/max-qps-at-slo": f"{sizing.max_qps_at_slo:.6g}",
        "inferops.dev/slo-p99-ms": f"{sizing.slo_p99_ms:.6g}",
        "inferops.dev/target-qps": f"{sizing.target_qps:.6g}",
        "inferops.dev/headroom": f"{sizing.headroom:.6g}",
    }


def deployment(sizing: Sizing, opts: RenderOptions) -> dict:
    kind = SERVER_KINDS[opts.kind]
    name, labels = _names(sizing, opts)
    container = {
        "name": "server",
        "image": opts.image or kind.image,
        "args": list(kind.args),
        "ports": [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"}],
        # the token comes from a Secret by reference: no secret in any manifest
        "env": [
            {
                "name": "INFEROPS_TOKEN" if kind.name == "inferops" else "VLLM_API_KEY",
                "valueFrom": {"secretKeyRef": {"name": opts.token_secret, "key": "token"}},
            }
        ]
        if kind.name in ("inferops", "vllm")
        else [],
        # startupProbe holds off liveness until the model is loaded, however slow
        "startupProbe": _probe(kind.ready_path, 10, max(1, opts.startup_seconds // 10)),
        "readinessProbe": _probe(kind.ready_path, 5, 3),
        "livenessProbe": _probe(kind.live_path, 10, 3),
        "resources": resources(sizing),
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    if not container["env"]:
        del container["env"]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": opts.namespace,
            "labels": labels,
            "annotations": _sizing_annotations(sizing),
        },
        "spec": {
            "replicas": sizing.replicas,
            "selector": {"matchLabels": _selector(labels)},
            "strategy": {
                "type": "RollingUpdate",
                # never below N serving while rolling: one extra up, none down
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 10001,
                        "runAsGroup": 10001,
                        "fsGroup": 10001,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    # a writable scratch dir, since the root filesystem is read-only
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}],
                },
            },
        },
    }


def service(sizing: Sizing, opts: RenderOptions) -> dict:
    name, labels = _names(sizing, opts)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": opts.namespace, "labels": labels},
        "spec": {
            "type": "ClusterIP",
            "selector": _selector(labels),
            "ports": [{"name": "http", "port": HTTP_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def pod_disruption_budget(sizing: Sizing, opts: RenderOptions) -> dict:
    """At most one pod down voluntarily: the N+1 sizing assumes exactly that."""
    name, labels = _names(sizing, opts)
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": opts.namespace, "labels": labels},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": _selector(labels)}},
    }


def horizontal_pod_autoscaler(sizing: Sizing, opts: RenderOptions) -> dict:
    name, labels = _names(sizing, opts)
    target = sizing.qps_per_pod_target
    # Pods metrics take a Kubernetes quantity; milli-units keep three decimals
    average = f"{int(round(target * 1000))}m"
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {
            "name": name,
            "namespace": opts.namespace,
            "labels": labels,
            "annotations": _sizing_annotations(sizing),
        },
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": sizing.replicas,
            "maxReplicas": max(
                sizing.replicas + 1, int(math.ceil(sizing.replicas * opts.max_replicas_factor))
            ),
            "metrics": [
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": QPS_METRIC},
                        "target": {"type": "AverageValue", "averageValue": average},
                    },
                }
            ],
        },
    }


def adapter_rules() -> dict:
    """prometheus-adapter ``rules`` that serve QPS_METRIC per pod.

    It is the server's request counter as a 1-minute rate, summed per pod, so
    the HPA sees the same QPS the load test measured.
    """
    return {
        "rules": [
            {
                "seriesQuery": 'inferops_requests_total{namespace!="",pod!=""}',
                "resources": {
                    "overrides": {
                        "namespace": {"resource": "namespace"},
                        "pod": {"resource": "pod"},
                    }
                },
                "name": {"matches": "^inferops_requests_total$", "as": QPS_METRIC},
                "metricsQuery": (
                    "sum(rate(<<.Series>>{<<.LabelMatchers>>}[1m])) by (<<.GroupBy>>)"
                ),
            }
        ]
    }


def adapter_config_map(opts: RenderOptions, rules_yaml: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "inferops-prometheus-adapter-rules",
            "namespace": opts.namespace,
            "labels": {"app.kubernetes.io/managed-by": "inferops"},
        },
        "data": {"config.yaml": rules_yaml},
    }


def service_monitor(sizing: Sizing, opts: RenderOptions) -> dict:
    name, labels = _names(sizing, opts)
    kind = SERVER_KINDS[opts.kind]
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": name, "namespace": opts.namespace, "labels": labels},
        "spec": {
            "selector": {"matchLabels": _selector(labels)},
            "endpoints": [{"port": "http", "path": kind.metrics_path, "interval": "15s"}],
        },
    }


def render(sizing: Sizing, opts: RenderOptions, dump_yaml) -> dict[str, dict]:
    """File name -> manifest. ``dump_yaml`` turns the adapter rules into text."""
    return {
        "deployment.yaml": deployment(sizing, opts),
        "service.yaml": service(sizing, opts),
        "pdb.yaml": pod_disruption_budget(sizing, opts),
        "hpa.yaml": horizontal_pod_autoscaler(sizing, opts),
        "prometheus-adapter-rules.yaml": adapter_config_map(opts, dump_yaml(adapter_rules())),
        "servicemonitor.yaml": service_monitor(sizing, opts),
    }
