"""Knobs for every host. Each line below is a knob at its default (commented out):
uncomment and change it here, in group_data/<group>.py, or per host in the fleet file.

Precedence (pyinfra): fleet host data > group_data/<group>.py > this file > component DEFAULTS.
Every value is validated (type, allowed values) before pyinfra connects: see
inferops/deploy/validate.py and docs/provisioning.md.

GENERATED from the knob declarations (KNOBS in inferops/deploy/*.py) by
`python -m inferops.deploy.catalog`: edit those, not these comments.
"""


# ---- common ----
# HTTP(S) proxy for every download: {'http': ..., 'https': ..., 'no_proxy': ...}
# proxy = None
# seconds an apt index stays fresh: apt-get update runs only when a package is missing AND the
# index is older than this
# apt_cache_time = 3600
# read the facts a deploy read last time in one SSH command per host and stage, reused until this
# run changes the host (inferops.deploy.factbatch); false: one round trip per fact read, as stock
# pyinfra
# fact_batching = True

# ---- layout ----
# system user the server runs as (owns /var/lib/inferops)
# service_user = 'inferops'
# open-files limit for the service user (limits.d) and systemd units (DefaultLimitNOFILE)
# nofile_limit = 1048576
# how the Python environment is built: distro python3-venv, or Miniforge conda ('venv' | 'conda')
# python_env = 'venv'
# venv location
# venv_path = '/opt/inferops/venv'
# Miniforge install prefix
# conda_prefix = '/opt/conda'
# conda environment name
# conda_env_name = 'inferops'

# ---- gpu ----
# install the GPU parts even when no NVIDIA GPU is detected (image builds, GPUs attached later)
# nvidia_driver_force = False

# ---- suite ----
# a prebuilt inferops wheel (else one is built from this checkout and cached)
# inferops_wheel = None

# ---- base ----
# packages every node gets (curl: downloads and checks; pciutils: lspci; python3: venv)
# base_packages = ['ca-certificates', 'curl', 'pciutils', 'procps', 'python3']
# site-specific extras
# base_extra_packages = []
# time sync daemon (skipped in containers: the outer host owns the clock) ('timesyncd' | 'chrony' |
# 'none')
# time_sync = 'timesyncd'
# kernel settings for serving, written to /etc/sysctl.d/90-inferops.conf and applied when it
# changes
# sysctl = {'net.core.somaxconn': 4096,
#     'net.ipv4.tcp_max_syn_backlog': 8192,
#     'net.ipv4.ip_local_port_range': '1024 65000',
#     'fs.file-max': 2097152}

# ---- nvidia_repos ----
# NVIDIA's CUDA repo base; point at a mirror for air-gapped fleets
# cuda_repo_url = 'https://developer.download.nvidia.com/compute/cuda/repos'
# cuda-keyring package version
# cuda_keyring_version = '1.1-1'
# sha256 of cuda-keyring_<version>_all.deb from that repo (required for the apt repo)
# cuda_keyring_sha256 = None
# RHEL-family: CUDA RPM signing key URL template ({repo}, {distro}, {arch})
# cuda_rpm_key_url = '{repo}/{distro}/{arch}/D42D0685.pub'
# sha256 of the CUDA RPM signing key (required for the dnf repo)
# cuda_rpm_key_sha256 = None
# Debian 12 distro driver: where contrib/non-free/non-free-firmware come from
# debian_mirror_url = 'http://deb.debian.org/debian'
# Debian security mirror
# debian_security_url = 'http://security.debian.org/debian-security'

# ---- nvidia_driver ----
# pinned driver branch
# nvidia_driver_branch = '570'
# where the driver comes from; auto: NVIDIA's CUDA repo when cuda_keyring_sha256 is set (always on
# RHEL), else the distro ('auto' | 'cuda_repo' | 'distro')
# nvidia_driver_source = 'auto'
# open GPU kernel modules (required for Blackwell, recommended from Turing on)
# nvidia_driver_open = False
# enable nvidia-persistenced (persistence mode)
# nvidia_persistenced = True
# reboot when (and only when) the driver packages changed; false: tell the operator
# nvidia_reboot = True
# loaded kernel module != installed library: fail (naming both versions) or reboot ('fail' |
# 'reboot')
# nvidia_mismatch_action = 'fail'
# seconds to wait for a host to come back after a driver reboot
# reboot_timeout = 600

# ---- cuda ----
# CUDA toolkit major.minor; the repo package is cuda-toolkit-<major>-<minor>
# cuda_version = '12.6'
# where the toolkit comes from; auto: NVIDIA's repo when its checksum is configured (always on
# RHEL), else the distro ('auto' | 'cuda_repo' | 'distro')
# cuda_source = 'auto'

# ---- container_toolkit ----
# install docker + the NVIDIA container toolkit (Triton, container-mode dcgm-exporter)
# container_toolkit = False
# the runtime `nvidia-ctk runtime configure` wires the NVIDIA runtime into ('docker' |
# 'containerd')
# container_runtime = 'docker'
# libnvidia-container repo base
# container_toolkit_repo_url = 'https://nvidia.github.io/libnvidia-container'
# libnvidia-container signing key
# container_toolkit_key_url = 'https://nvidia.github.io/libnvidia-container/gpgkey'
# sha256 of that key file (required: no unverified key is trusted)
# container_toolkit_key_sha256 = None

# ---- python_env ----
# Python in the conda env
# conda_python_version = '3.11'
# conda channels (names or mirror URLs)
# conda_channels = ['conda-forge']
# pinned Miniforge release
# miniforge_version = '24.11.3-0'
# installer URL template ({version}, {arch})
# miniforge_url = 'https://github.com/conda-forge/miniforge/releases/download/{version}/Miniforge3-{version}-Linux-{arch}.sh'
# installer sha256 per arch ({'x86_64': ..., 'aarch64': ...}) from the release's .sha256 files;
# required for python_env = conda: no unverified installer ever runs
# miniforge_sha256 = {}
# pip index (PyPI mirror)
# pip_index_url = None
# extra pip indexes
# pip_extra_index_urls = []
# hosts pip trusts without TLS verification
# pip_trusted_hosts = []
# local CA bundle, uploaded and given to pip
# pip_ca_cert = None
# ONNX Runtime flavour (onnxruntime-gpu on CUDA nodes) ('onnxruntime' | 'onnxruntime-gpu')
# onnxruntime_package = 'onnxruntime'
# OpenVINO in the env (server_backend openvino): installed from the lock that includes it, then
# imported for real
# openvino = False
# your own hash-pinned lock (made like templates/deploy/requirements/*.txt) instead of the shipped
# one for this onnxruntime_package/openvino
# python_requirements_lock = None
# download the lock's wheels once, on the control machine (hash-checked, cached in
# .inferops/wheelhouse), and upload them: hosts install with --no-index instead of each downloading
# from the index; false: every host downloads for itself
# pip_wheelhouse = True
# extra pip packages, installed after the lock WITHOUT hash checking: prefer your own
# python_requirements_lock
# python_packages = []

# ---- accelerators ----
# install TensorRT into the env (GPU nodes)
# tensorrt = False
# TensorRT pip package (NVIDIA's wheels)
# tensorrt_package = 'tensorrt-cu12'
# pinned TensorRT (None: latest)
# tensorrt_version = None

# ---- inference_server ----
# the reference server, Triton in its NGC container (needs container_toolkit), or vLLM's OpenAI-
# compatible server (GPU nodes; see vllm_*) ('inferops' | 'triton' | 'vllm')
# server_runtime = 'inferops'
# embedded model built on the control machine and served ('mlp' | 'cnn' | 'dense' | 'tinylm')
# server_model = 'mlp'
# your own .onnx on the control machine (takes precedence over server_model)
# server_model_path = None
# name the model is served under (default: server_model or the file's stem)
# server_model_name = None
# version label of the served model (letters, digits, . _ + -); it names one content: its directory
# is <version>-<sha12>, and None stores it as <sha12> alone
# server_model_version = None
# the .onnx for server_model_version, set by `inferops rollout` for the version it rolls out (takes
# precedence over server_model_path and server_model; the served name stays the inventory's)
# server_model_source = None
# model versions kept on the node, the served one included (most recently served first): at least
# 2, so a rollback is a link flip
# server_model_keep = 3
# listen address (an IP or 'localhost'); not loopback => a bearer token is generated and required
# server_bind = '0.0.0.0'
# listen port
# server_port = 8000
# inference backend ('onnxruntime' | 'openvino')
# server_backend = 'onnxruntime'
# dynamic batching: max batch
# server_max_batch_size = 8
# dynamic batching: longest a request waits for others (ms, 0-60000)
# server_max_queue_delay_ms = 2.0
# extra environment for the server process (written to server.env, one line each)
# server_extra_env = {}
# where bearer tokens live on the control machine (0700 dir, 0600 files); None: .inferops/tokens
# under the directory pyinfra runs in
# server_token_dir = None
# which bearer token the server requires: the file of that name in server_token_dir (None: the
# host's own name). Hosts behind one load balancer share one name, so one client token works
# through it
# server_token_name = None
# TEST FLEETS ONLY: honour a test fault a model declares in its metadata (inferops.fault.*, see
# docs/server.md); rollout tests use it for a version that breaks under sustained traffic
# server_allow_fault_injection = False
# after a change, wait until the unit is active and the port answers
# server_verify = True
# Triton NGC image pinned by digest, required with server_runtime = triton:
# nvcr.io/nvidia/tritonserver:24.08-py3@sha256:<digest> (from `docker buildx imagetools inspect` or
# your registry); pulled once, never on a service start
# triton_image = None
# publish Triton (which has no authentication) on a non-loopback server_bind; without it Triton
# must bind loopback, behind your own authenticating proxy
# triton_insecure = False
# Triton model repository on the host
# triton_model_repository = '/var/lib/inferops/triton'

# ---- vllm_server ----
# vLLM release pip-installed into vllm_venv (server_runtime = vllm; not hash-locked)
# vllm_version = '0.6.3'
# the venv vLLM lives in (built from the node environment's Python)
# vllm_venv = '/opt/inferops/vllm'
# model vLLM serves, required with server_runtime = vllm: a Hugging Face id (downloaded on the
# first start into /var/lib/inferops/huggingface) or a path on the host
# vllm_model = None
# extra `vllm serve` engine arguments, one argv word per item (e.g. ["--max-model-len", "4096", "--
# gpu-memory-utilization", "0.9"])
# vllm_args = []

# ---- node_exporter ----
# auto: the distro package on Debian/Ubuntu, the release tarball on RHEL-family ('auto' | 'package'
# | 'tarball')
# node_exporter_source = 'auto'
# pinned node_exporter release (tarball source)
# node_exporter_version = '1.8.2'
# tarball URL template ({version}, {arch}); point at a mirror for air-gapped fleets
# node_exporter_url = 'https://github.com/prometheus/node_exporter/releases/download/v{version}/node_exporter-{version}.linux-{arch}.tar.gz'
# tarball sha256 per arch ({'x86_64': ..., 'aarch64': ...}) from the release's sha256sums.txt;
# required for the tarball source
# node_exporter_sha256 = {}
# listen address
# node_exporter_listen = ':9100'

# ---- dcgm_exporter ----
# run dcgm-exporter (GPU metrics for Prometheus)
# dcgm_exporter = False
# container: the NGC image with docker (needs container_toolkit); binary: a dcgm-exporter binary
# from dcgm_exporter_binary_url ('container' | 'binary')
# dcgm_exporter_mode = 'container'
# dcgm-exporter image
# dcgm_exporter_image = 'nvcr.io/nvidia/k8s/dcgm-exporter:3.3.8-3.6.0-ubuntu22.04'
# dcgm-exporter binary URL
# dcgm_exporter_binary_url = None
# dcgm-exporter binary sha256
# dcgm_exporter_binary_sha256 = None
# listen address
# dcgm_exporter_listen = ':9400'

# ---- nightly ----
# nightly.toml on the control machine (required); validated like `inferops nightly --check` before
# anything is uploaded
# nightly_config = None
# when the night runs: a systemd OnCalendar expression (host time zone unless one is given),
# checked with systemd-analyze calendar where the control machine has it
# nightly_on_calendar = '*-*-* 02:30:00'
# RandomizedDelaySec: spreads several controllers loading shared targets
# nightly_randomized_delay = '15min'
# TimeoutStartSec: the longest one night may take before systemd stops it
# nightly_timeout = '6h'
# working directory (owned by service_user): relative paths in nightly.toml, the default store
# history.sqlite, run folders and the trend report
# nightly_work_dir = '/var/lib/inferops-nightly'
# local KEY=value file (INFEROPS_TOKEN, PGPASSWORD) uploaded 0600 root:root to
# /etc/inferops/nightly.env and read by systemd; its content is never shown
# nightly_env_file = None
# OnFailure= unit started when a night fails (confirmed regression, invalid run)
# nightly_on_failure = None
# pip packages the load generator needs beyond the server lock (installed when missing, not hash-
# checked: pin versions, or put them in python_requirements_lock)
# nightly_packages = ['locust', 'hdrhistogram', 'scipy', 'jinja2', 'rich', 'pyyaml']

# ---- loadgen ----
# where the workers find the master (`inferops bench --master`): required
# loadgen_master_host = None
# the master's port (`bench --master-port`, Locust's 5557 by default)
# loadgen_master_port = 5557
# worker processes on this host (default: one per CPU)
# loadgen_workers = None
# pin worker @N to CPU N-1 (CPUAffinity=, a drop-in per instance)
# loadgen_cpu_pinning = True
# pip packages the load generator needs beyond the server lock (installed when missing)
# loadgen_packages = ['locust', 'hdrhistogram', 'scipy', 'jinja2', 'rich', 'pyyaml']

# ---- monitoring_files ----
# Prometheus listen address; not loopback => basic auth with a generated password
# (.inferops/monitoring/<host>/password on the control machine)
# prometheus_listen = '127.0.0.1:9090'
# Alertmanager listen address; not loopback => the same basic auth as Prometheus
# alertmanager_listen = '127.0.0.1:9093'
# Grafana from apt.grafana.com on monitoring hosts (needs grafana_gpg_key_sha256)
# grafana = True
# inference hosts: the capacity profile (of an `inferops bench --sweep` run in monitoring_capacity)
# their InferenceCapacityHeadroomLow alert uses
# capacity_profile = None
# thresholds.toml the alert rules come from (control machine; None: ./thresholds.toml if present,
# else the built-in seed table)
# monitoring_thresholds = None
# run folders of `inferops bench --sweep` (control machine): capacity headroom alerts
# monitoring_capacity = []
# Alertmanager webhook receivers (http(s) URLs)
# monitoring_webhooks = []
# scrape and rule evaluation interval
# monitoring_scrape_interval = '15s'

# ---- prometheus ----
# how long Prometheus keeps samples (--storage.tsdb.retention.time)
# prometheus_retention = '15d'
# cap on the TSDB's size (--storage.tsdb.retention.size); None: time only
# prometheus_retention_size = None

# ---- grafana ----
# Grafana apt repo (or a mirror)
# grafana_apt_url = 'https://apt.grafana.com'
# the repo's signing key
# grafana_gpg_key_url = 'https://apt.grafana.com/gpg.key'
# sha256 of the signing key (required: the key is verified before apt trusts it)
# grafana_gpg_key_sha256 = None
# pin the grafana package (e.g. 11.2.0); None: the repo's latest at first install
# grafana_version = None
# listen address
# grafana_listen = '127.0.0.1:3000'

# ---- loadbalancer ----
# where nginx accepts client traffic (address:port)
# lb_listen = '0.0.0.0:80'
# inventory groups whose hosts (address + server_port) form the upstream
# lb_upstream_groups = ['gpu_nodes', 'cpu_nodes']
# per-host weight {host: weight} (default 1); 0 takes the host out (nginx 'down'); the release
# engine sets it to drain and shift traffic
# lb_weights = {}
# passive health check: failed attempts within lb_fail_timeout that take a host out (0: never)
# lb_max_fails = 3
# passive health check: the window for lb_max_fails, and how long a failed host stays out
# lb_fail_timeout = '10s'
# idle keepalive connections to the upstreams kept per nginx worker
# lb_keepalive = 32
# connections each nginx worker may hold open, clients and upstreams together (Debian ships 768): a
# proxied request holds two, an LLM stream for minutes
# lb_worker_connections = 4096
# how long nginx waits to connect to an upstream before trying the next one
# lb_connect_timeout = '2s'
# longest silence from an upstream mid-response (LLM streams need minutes)
# lb_read_timeout = '300s'
