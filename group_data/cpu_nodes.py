"""Knobs for CPU inference nodes (``deploys/cpu_node.py``); see group_data/all.py for all knobs."""

# Distro python3-venv: no installer download, works on Debian 12 / Ubuntu as is.
python_env = "venv"
onnxruntime_package = "onnxruntime"
# OpenVINO so `server_backend = "openvino"` can be chosen per host; import-checked after install.
openvino = True
server_backend = "onnxruntime"
