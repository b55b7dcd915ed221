"""pyinfra ``@deploy`` components that turn a bare Debian/Ubuntu (or RHEL-family) server
into a monitored inference node.

One component per module, each with its ``DEFAULTS`` beside it:

- ``base``: packages, time sync, sysctl/ulimits for serving, the ``inferops`` service user
- ``nvidia_driver``: pinned driver branch, reboot only on change, mismatch detection
- ``cuda``: pinned CUDA toolkit and ``/etc/profile.d/cuda.sh``
- ``container_toolkit``: NVIDIA container toolkit + docker (optional)
- ``python_env``: the Python environment (``venv`` or Miniforge ``conda``)
- ``accelerators``: TensorRT / OpenVINO inside that environment, with import checks
- ``inference_server``: the reference server (or Triton) as a hardened systemd unit
- ``node_exporter`` / ``dcgm_exporter``: metrics exporters as systemd units

``deploys/cpu_node.py`` and ``deploys/gpu_node.py`` compose them; every knob is
documented in ``group_data/*.py`` and checked by ``inferops.deploy.validate``
before any operation runs.
"""
