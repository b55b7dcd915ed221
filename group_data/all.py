"""Knobs for every host. Each line below is a knob at its default (commented out):
uncomment and change it here, in group_data/<group>.py, or per host in the fleet file.

Precedence (pyinfra): fleet host data > group_data/<group>.py > this file > component DEFAULTS.
Every value is validated (type, allowed values) before pyinfra connects: see
inferops/deploy/validate.py and docs/provisioning.md.
"""


# ---- base ----
# HTTP(S) proxy for downloads: {'http':..., 'https':..., 'no_proxy':...}
# proxy = None
# seconds an apt index stays fresh before apt-get update
# apt_cache_time = 3600
# packages every node gets
# base_packages = ['ca-certificates', 'curl', 'pciutils', 'procps', 'python3']
# site-specific extra packages
# base_extra_packages = []
# time sync daemon ('timesyncd' | 'chrony' | 'none')
# time_sync = 'timesyncd'
# kernel settings for serving
# sysctl = {'net.core.somaxconn': 4096,
#      'net.ipv4.tcp_max_syn_backlog': 8192,
#      'net.ipv4.ip_local_port_range': '1024 65000',
#      'fs.file-max': 2097152}
# open-files limit for the service user and unit
# nofile_limit = 1048576
# system user the server runs as
# service_user = 'inferops'
# seconds to wait for a host to come back after reboot
# reboot_timeout = 600

# ---- nvidia_repos ----
# NVIDIA CUDA repo base (mirror for air-gap)
# cuda_repo_url = 'https://developer.download.nvidia.com/compute/cuda/repos'
# cuda-keyring package version
# cuda_keyring_version = '1.1-1'
# sha256 of the cuda-keyring .deb
# cuda_keyring_sha256 = None
# CUDA RPM signing key URL template ({repo}, {distro}, {arch})
# cuda_rpm_key_url = '{repo}/{distro}/{arch}/D42D0685.pub'
# sha256 of the CUDA RPM signing key
# cuda_rpm_key_sha256 = None
# Debian mirror for contrib/non-free (distro driver)
# debian_mirror_url = 'http://deb.debian.org/debian'
# Debian security mirror
# debian_security_url = 'http://security.debian.org/debian-security'

# ---- nvidia_driver ----
# driver branch
# nvidia_driver_branch = '570'
# where the driver comes from ('auto' | 'cuda_repo' | 'distro')
# nvidia_driver_source = 'auto'
# open kernel modules
# nvidia_driver_open = False
# install even when no NVIDIA GPU is detected
# nvidia_driver_force = False
# enable nvidia-persistenced
# nvidia_persistenced = True
# reboot when the driver package changed
# nvidia_reboot = True
# on kernel/library version mismatch ('fail' | 'reboot')
# nvidia_mismatch_action = 'fail'

# ---- cuda ----
# CUDA toolkit version
# cuda_version = '12.6'
# where the toolkit comes from ('auto' | 'cuda_repo' | 'distro')
# cuda_source = 'auto'

# ---- container_toolkit ----
# install docker + NVIDIA container toolkit
# container_toolkit = False
# runtime nvidia-ctk configures ('docker' | 'containerd')
# container_runtime = 'docker'
# libnvidia-container repo base
# container_toolkit_repo_url = 'https://nvidia.github.io/libnvidia-container'
# libnvidia-container signing key
# container_toolkit_key_url = 'https://nvidia.github.io/libnvidia-container/gpgkey'
# sha256 of that key
# container_toolkit_key_sha256 = None

# ---- python_env ----
# how the Python environment is built ('venv' | 'conda')
# python_env = 'venv'
# venv location
# venv_path = '/opt/inferops/venv'
# Miniforge install prefix
# conda_prefix = '/opt/conda'
# conda environment name
# conda_env_name = 'inferops'
# Python in the conda env
# conda_python_version = '3.11'
# conda channels (mirror URLs allowed)
# conda_channels = ['conda-forge']
# pinned Miniforge release
# miniforge_version = '24.11.3-0'
# installer URL template ({version}, {arch})
# miniforge_url = 'https://github.com/conda-forge/miniforge/releases/download/{version}/Miniforge3-{version}-Linux-{arch}.sh'
# installer sha256 per arch
# miniforge_sha256 = {}
# pip index (PyPI mirror)
# pip_index_url = None
# extra pip indexes
# pip_extra_index_urls = []
# hosts pip trusts without TLS verification
# pip_trusted_hosts = []
# local CA bundle uploaded and given to pip
# pip_ca_cert = None
# ONNX Runtime flavour ('onnxruntime' | 'onnxruntime-gpu')
# onnxruntime_package = 'onnxruntime'
# pip packages the server needs
# server_requirements = ['numpy', 'onnx', 'fastapi', 'uvicorn', 'prometheus-client', 'orjson', 'psutil']
# extra pip packages
# python_packages = []

# ---- accelerators ----
# install OpenVINO into the env
# openvino = False
# pinned OpenVINO
# openvino_version = None
# install TensorRT into the env
# tensorrt = False
# TensorRT pip package
# tensorrt_package = 'tensorrt-cu12'
# pinned TensorRT
# tensorrt_version = None

# ---- inference_server ----
# reference server or Triton container ('inferops' | 'triton')
# server_runtime = 'inferops'
# embedded model to build and serve ('mlp' | 'cnn' | 'dense')
# server_model = 'mlp'
# user .onnx on the control machine (overrides server_model)
# server_model_path = None
# name served (defaults to the model)
# server_model_name = None
# listen address
# server_bind = '0.0.0.0'
# listen port
# server_port = 8000
# inference backend ('onnxruntime' | 'openvino')
# server_backend = 'onnxruntime'
# dynamic batching: max batch
# server_max_batch_size = 8
# dynamic batching: max wait (ms)
# server_max_queue_delay_ms = 2.0
# extra environment for the server
# server_extra_env = {}
# where tokens are kept on the control machine
# server_token_dir = None
# check the service is up after a change
# server_verify = True
# prebuilt inferops wheel (else built from this repo)
# inferops_wheel = None
# Triton NGC image
# triton_image = 'nvcr.io/nvidia/tritonserver:24.08-py3'
# Triton model repository on the host
# triton_model_repository = '/var/lib/inferops/triton'

# ---- node_exporter ----
# distro package or tarball ('auto' | 'package' | 'tarball')
# node_exporter_source = 'auto'
# pinned node_exporter release
# node_exporter_version = '1.8.2'
# tarball URL template ({version}, {arch})
# node_exporter_url = 'https://github.com/prometheus/node_exporter/releases/download/v{version}/node_exporter-{version}.linux-{arch}.tar.gz'
# tarball sha256 per arch
# node_exporter_sha256 = {}
# listen address
# node_exporter_listen = ':9100'

# ---- dcgm_exporter ----
# run dcgm-exporter
# dcgm_exporter = False
# how dcgm-exporter runs ('container' | 'binary')
# dcgm_exporter_mode = 'container'
# dcgm-exporter image
# dcgm_exporter_image = 'nvcr.io/nvidia/k8s/dcgm-exporter:3.3.8-3.6.0-ubuntu22.04'
# dcgm-exporter binary URL
# dcgm_exporter_binary_url = None
# dcgm-exporter binary sha256
# dcgm_exporter_binary_sha256 = None
# listen address
# dcgm_exporter_listen = ':9400'
