"""Knobs for GPU inference nodes (``deploys/gpu_node.py``); see group_data/all.py for all knobs.

Checksums are data you supply from your source of truth (NVIDIA's repo, the
Miniforge release page, your mirror): nothing unverified is downloaded, so the
knobs marked REQUIRED must be set for the features that use them.
"""

nvidia_driver_branch = "570"
# auto: NVIDIA's CUDA repo once cuda_keyring_sha256 is set (always on RHEL 9), else distro.
nvidia_driver_source = "auto"
nvidia_driver_open = False
nvidia_reboot = True
nvidia_mismatch_action = "fail"
cuda_version = "12.6"
# REQUIRED for the CUDA apt repo: sha256 of cuda-keyring_1.1-1_all.deb.
# cuda_keyring_sha256 = "..."
# REQUIRED on RHEL 9: sha256 of the repo signing key.
# cuda_rpm_key_sha256 = "..."

# Miniforge conda env with the GPU runtime; REQUIRED: miniforge_sha256 = {"x86_64": "..."}.
# Without it, set python_env = "venv" per host (fleet data) instead.
python_env = "conda"
onnxruntime_package = "onnxruntime-gpu"
tensorrt = True
openvino = False

# docker + NVIDIA container toolkit: runs dcgm-exporter (container mode) and Triton.
# REQUIRED on hosts with a GPU: container_toolkit_key_sha256 = "..." (sha256 of the repo key).
container_toolkit = True
dcgm_exporter = True
# dcgm_exporter_mode = "container"   # or "binary" with dcgm_exporter_binary_url + _sha256
# server_runtime = "triton"          # NGC Triton instead of the inferops server
