"""The load flags, declared once, and the typed :class:`LoadConfig` built from them.

``inferops bench`` and ``locust -f loadtests/`` take the same load flags:
:func:`add_load_options` declares them on either parser (``locust=True`` adds
Locust's web-UI keywords and names the rate ``--arrival-rate``, because Locust
owns ``-u``/``-t``/``-H``). :meth:`LoadConfig.from_namespace` turns either
parsed namespace into one typed config: the thresholds file is read here, the
P99 bound resolved here (:func:`inferops.thresholds.resolve_bound`), and the
Locust parser's "unset" values (``0``, ``""``) become the one sentinel, None.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
from dataclasses import dataclass, field

from inferops import thresholds, validators
from inferops.load import protocols
from inferops.load.arrivals import ARRIVALS, SCENARIOS, Scenario
from inferops.thresholds import UNSET, Setting

TOKEN_ENV = "INFEROPS_TOKEN"


def add_load_options(parser, *, locust: bool = False) -> None:
    """Declare the load flags on ``parser`` (argparse, or Locust's own parser)."""

    def add(*flags, web_ui: bool = True, secret: bool = False, **kw):
        if locust:  # Locust's parser understands two more keywords
            if not web_ui:
                kw["include_in_web_ui"] = False
            if secret:
                kw["is_secret"] = True
        parser.add_argument(*flags, **kw)

    if not locust:
        add(
            "--target",  # required, except with --worker (cli.py checks)
            default=None,
            type=validators.http_url,
            metavar="URL",
            help="base URL of the inference server, e.g. http://127.0.0.1:8000 "
            "(required unless --profiles serves the model itself)",
        )
    add(
        "--protocol",
        choices=protocols.names(),
        default="v2",
        help="wire protocol (default v2): "
        + "; ".join(f"{name}: {protocols.registry()[name].help}" for name in protocols.names()),
    )
    add("--model", default=None, metavar="NAME", help="model name (payloads from its v2 metadata)")
    add(
        "--input-file",
        default=None,
        metavar="FILE",
        help="request bodies: .jsonl, one complete JSON body a line (v2: also .npy samples)",
    )
    _add_protocol_options(add, locust)
    if locust:
        add(
            "--arrival-rate",
            type=validators.non_negative,
            default=0.0,
            help="open-loop arrivals per second in total (0 = classic closed loop)",
        )
    else:
        load = parser.add_mutually_exclusive_group()
        load.add_argument(
            "--rate", type=validators.positive, metavar="QPS", help="open-loop arrival rate, req/s"
        )
        load.add_argument(
            "--users",
            type=validators.positive_int,
            metavar="N",
            help="classic closed-loop Locust users",
        )
    add(
        "--arrivals",
        choices=ARRIVALS,
        default="poisson",
        help="open-loop arrival process (default poisson)",
    )
    add(
        "--scenario",
        choices=SCENARIOS,
        default="steady",
        help="shape of the load over the run (default steady)",
    )
    add(
        "--steps",
        type=validators.positive_int,
        default=4,
        help="plateaus of --scenario step (default 4)",
    )
    add(
        "--spike-factor",
        type=validators.positive,
        default=5.0,
        help="peak / baseline for --scenario spike (default 5)",
    )
    add(
        "--slo-p99-ms",
        type=validators.non_negative if locust else validators.positive,
        default=0.0 if locust else None,
        metavar="MS",
        help="P99 bound for --sweep, early stopping and the gate (default p99_latency_ms)",
    )
    add(
        "--thresholds",
        default=None,
        metavar="FILE",
        help="thresholds.toml to gate on (default: the built-in seed table)",
    )
    add(
        "--max-inflight",
        type=validators.positive_int,
        default=10_000,
        help="open-loop safety cap on requests in flight; hitting it invalidates",
    )
    add(
        "--late-tolerance-ms",
        type=validators.number,
        default=None,
        metavar="MS",
        help="a send this late after its intended time counts as late "
        "(default 5%% of the P99 bound, at least 1 ms)",
    )
    add(
        "--token",
        default=os.environ.get(TOKEN_ENV) if locust else None,
        secret=True,
        help=f"bearer token (default ${TOKEN_ENV})",
    )
    if locust:
        add(
            "--run-folder",
            default="",
            web_ui=False,
            help="write an inferops run folder (summary.json, HDR, ...) here at exit",
        )
        return
    add("--duration", type=validators.duration, default="30s", help="measured window (default 30s)")
    add(
        "--warmup",
        type=validators.duration_or_zero,
        default="5s",
        help="warm-up excluded from results (default 5s)",
    )
    add("--timeout", type=validators.duration, default="30s", help="per-request timeout (30s)")
    add("--seed", type=int, help="seed of the arrival process")
    add("--profile", metavar="LABEL", help="label stored in manifest.json for reports")
    add(
        "--nodes",
        type=validators.positive_int,
        metavar="N",
        help="inference nodes behind --target (a load balancer), default 1; recorded so "
        "`inferops report` can hold N nodes' capacity against the sizing model's prediction",
    )
    add(
        "--node-exporter",
        type=validators.http_url,
        metavar="URL",
        help="take host metrics from the target's node_exporter (e.g. http://HOST:9100)"
        " instead of this machine",
    )
    add(
        "--prometheus",
        type=validators.http_url,
        metavar="URL",
        help="take the hosts' node_exporter/dcgm-exporter series for the run window from this"
        " Prometheus (query_range), e.g. http://user:pass@mon:9090; needs --instance",
    )
    add(
        "--instance",
        action="append",
        default=[],
        metavar="HOST",
        help="with --prometheus: a host under test, its `instance` label (with or without"
        " :port); repeatable, thresholds judge the worst host",
    )
    add(
        "--prometheus-password-file",
        metavar="FILE",
        help="with --prometheus: basic-auth password read from FILE (user from the URL,"
        " default inferops)",
    )


def _add_protocol_options(add, locust: bool) -> None:
    """Flags of the protocol adapters (inferops/load/protocols/)."""
    add("--method", default=None, help="http: request method (default POST)")
    add("--path", default=None, help="request path, overriding the protocol's (http: required)")
    add(
        "--header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        secret=True,
        web_ui=False,  # a repeatable flag has no field in Locust's form
        help="extra request header, repeatable (values are never written to the run folder)",
    )
    add(
        "--expect-json-key",
        default=None,
        metavar="KEY",
        help="a reply must also be a JSON object with this key",
    )
    add(
        "--openai-endpoint",
        choices=("chat", "completions"),
        default="chat",
        help="openai: /v1/chat/completions (default) or /v1/completions",
    )
    add(
        "--prompt-tokens",
        type=validators.positive_int,
        default=128,
        help="openai: words per synthetic prompt (default 128)",
    )
    add(
        "--max-tokens",
        type=validators.positive_int,
        default=128,
        help="openai: max_tokens of each request (default 128)",
    )
    add(
        "--no-ignore-eos",
        action="store_true",
        default=False,
        help="openai: do not send ignore_eos (for servers that reject it)",
    )
    add(
        "--slo-ttft-ms",
        type=validators.non_negative if locust else validators.positive,
        default=0.0 if locust else None,
        metavar="MS",
        help="openai: TTFT bound for goodput and the sweep's knee",
    )
    add(
        "--slo-tpot-ms",
        type=validators.non_negative if locust else validators.positive,
        default=0.0 if locust else None,
        metavar="MS",
        help="openai: TPOT bound for goodput and the sweep's knee",
    )


def _unset(value):
    """Locust's parser (and its web UI) say "not set" with 0 or ""; we say None."""
    return UNSET if value in (None, "", 0) else value


def late_tolerance_s(given_ms: float | None, bound: Setting) -> float:
    """``--late-tolerance-ms``, else 5 % of the P99 bound in force (at least 1 ms)."""
    from inferops.measure.validity import default_late_tolerance_s

    if given_ms is not None:
        return validators.check(given_ms, validators.positive, "--late-tolerance-ms") / 1000.0
    return default_late_tolerance_s(bound.value)


@dataclass
class LoadConfig:
    """One load: what to send, how fast, for how long, and what it is judged against."""

    target: str
    protocol: str = "v2"
    model: str | None = None
    token: str | None = None
    input_file: str | None = None
    rate: float | None = None  # open-loop arrivals/s in total; None = closed loop
    users: int | None = None  # closed-loop users (bench --users)
    arrivals: str = "poisson"
    scenario: Scenario = field(default_factory=Scenario)
    duration_s: float = 30.0  # the measured window (inf: until stopped)
    warmup_s: float = 0.0
    max_inflight: int = 10_000
    timeout_s: float = 30.0
    seed: int | None = None
    late_tolerance_s: float = 0.001
    limits: dict = field(default_factory=dict)  # from inferops.thresholds.load, read once
    bound: Setting = field(default_factory=lambda: Setting(UNSET, "not set"))
    node_exporter: str | None = None  # host metrics from the target's node_exporter
    # host metrics read back from Prometheus (inferops.measure.promsource.PrometheusSource)
    prometheus: object = field(default=None, repr=False, compare=False)
    profile: str | None = None
    nodes: int = 1  # inference nodes behind the target (bench --nodes)
    # set when the schedule starts: epoch of t=0 and its length (warm-up included)
    start: float | None = None
    schedule_s: float = math.inf
    # the protocol adapter's options (inferops/load/protocols/)
    method: str | None = None
    path_override: str | None = None
    headers_given: list[str] = field(default_factory=list, repr=False)  # secret values
    expect_json_key: str | None = None
    openai_endpoint: str = "chat"
    prompt_tokens: int = 128
    max_tokens: int = 128
    ignore_eos: bool = True
    slo_ttft_ms: float | None = None
    slo_tpot_ms: float | None = None
    _protocol: object = field(default=None, repr=False, compare=False)

    @property
    def mode(self) -> str:
        return "open" if self.rate else "closed"

    @property
    def bound_ms(self) -> float | None:
        return self.bound.value

    @property
    def proto(self):
        """The protocol adapter (built once; it caches the request bodies)."""
        if self._protocol is None:
            from inferops.load.protocols.base import ProtocolOptions

            self._protocol = protocols.create(
                self.protocol,
                ProtocolOptions(
                    model=self.model,
                    input_file=self.input_file,
                    token=self.token,
                    method=self.method,
                    path=self.path_override,
                    headers=list(self.headers_given),
                    expect_json_key=self.expect_json_key,
                    seed=self.seed,
                    openai_endpoint=self.openai_endpoint,
                    prompt_tokens=self.prompt_tokens,
                    max_tokens=self.max_tokens,
                    ignore_eos=self.ignore_eos,
                ),
            )
        return self._protocol

    @property
    def streaming(self) -> bool:
        """Does the protocol measure LLM streams (TTFT, ITL, TPOT, tokens)?"""
        return getattr(self.proto, "streaming", False)

    @property
    def path(self) -> str:
        return self.proto.path

    def load_bodies(self) -> list[bytes]:
        return self.proto.prepare(self.target)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values no artefact of this run may contain (token, header values, URL passwords,
        secret env)."""
        from inferops.redact import secrets_of

        headers = [v.partition(":")[2].strip() for v in self.headers_given]  # --header values
        headers += getattr(self.prometheus, "secrets", [])  # its password, from URL or file
        return tuple(
            secrets_of(token=self.token, urls=(self.target, self.node_exporter), values=headers)
        )

    def headers(self) -> dict:
        return self.proto.headers()

    @classmethod
    def from_namespace(
        cls,
        ns: argparse.Namespace,
        *,
        host: str | None = None,
        run_time: float | None = None,
        seed_thresholds: bool = True,
    ) -> LoadConfig:
        """A config from ``inferops bench`` args or Locust's ``parsed_options``.

        ``host``/``run_time``: Locust's ``-H`` and ``-t`` (bench has --target/--duration).
        Without ``--thresholds``, bench judges by the seed table (``seed_thresholds``);
        stock Locust gates only on what it is given. Raises UsageError for a bad value
        or thresholds file.
        """
        get = ns.__dict__.get
        protocol = get("protocol") or "v2"
        streaming = getattr(protocols.registry().get(protocol), "streaming", False)
        path = _unset(get("thresholds"))
        limits = thresholds.load(path, llm=streaming) if path or seed_thresholds else {}
        option = _unset(get("slo_p99_ms"))
        if option is not None:
            option = validators.check(option, validators.positive, "--slo-p99-ms")
        bound = thresholds.resolve_bound(option, limits)
        duration = run_time if run_time else get("duration") or math.inf
        warmup = get("warmup") or 0.0
        target = host if host is not None else get("target") or ""
        if host:  # Locust's -H (bench's --target is checked by its parser)
            target = validators.check(host, validators.http_url, "-H/--host")
        return cls(
            target=target.rstrip("/"),
            protocol=protocol,
            model=_unset(get("model")),
            token=_unset(get("token")) or os.environ.get(TOKEN_ENV) or None,
            input_file=_unset(get("input_file")),
            rate=_unset(get("rate") if "rate" in ns else get("arrival_rate")),
            users=_unset(get("users")),
            arrivals=get("arrivals") or "poisson",
            scenario=Scenario(
                get("scenario") or "steady",
                duration_s=warmup + duration,
                steps=get("steps") or 4,
                spike_factor=get("spike_factor") or 5.0,
            ),
            duration_s=duration,
            warmup_s=warmup,
            max_inflight=get("max_inflight") or 10_000,
            timeout_s=get("timeout") or 30.0,
            seed=get("seed"),
            late_tolerance_s=late_tolerance_s(
                None if get("late_tolerance_ms") in (None, "") else get("late_tolerance_ms"),
                bound,
            ),
            limits=limits,
            bound=bound,
            node_exporter=get("node_exporter"),
            profile=get("profile"),
            nodes=get("nodes") or 1,
            method=_unset(get("method")),
            path_override=_unset(get("path")),
            headers_given=list(get("header") or []),
            expect_json_key=_unset(get("expect_json_key")),
            openai_endpoint=get("openai_endpoint") or "chat",
            prompt_tokens=get("prompt_tokens") or 128,
            max_tokens=get("max_tokens") or 128,
            ignore_eos=not get("no_ignore_eos"),
            slo_ttft_ms=_unset(get("slo_ttft_ms")),
            slo_tpot_ms=_unset(get("slo_tpot_ms")),
        )

    # -- master -> worker ----------------------------------------------------------
    #: what a worker needs to send its share (limits and the verdict stay on the master)
    _WIRE = (
        "target", "protocol", "model", "token", "input_file", "rate", "users", "arrivals",
        "duration_s", "warmup_s", "max_inflight", "timeout_s", "seed", "late_tolerance_s",
        "schedule_s", "method", "path_override", "headers_given", "expect_json_key",
        "openai_endpoint", "prompt_tokens", "max_tokens", "ignore_eos", "slo_ttft_ms",
        "slo_tpot_ms",
    )  # fmt: skip

    def to_wire(self) -> dict:
        """Plain values for the master's spawn message (``inferops bench --workers``).

        The token and header values travel to the workers, which need them to
        send; like Locust's own options they cross the master-worker link as is.
        """
        data = {name: getattr(self, name) for name in self._WIRE}
        data["scenario"] = dataclasses.asdict(self.scenario)
        data["bound"] = [self.bound.value, self.bound.source]
        return data

    @classmethod
    def from_wire(cls, data: dict) -> LoadConfig:
        values = {name: data.get(name) for name in cls._WIRE}
        values["headers_given"] = list(values["headers_given"] or [])
        return cls(
            **values,
            scenario=Scenario(**data["scenario"]),
            bound=Setting(*data["bound"]),
        )
