"""pyinfra ``@deploy`` components that turn a bare Debian/Ubuntu (or RHEL-family) server
into a monitored inference node.

One component per module, each declaring its knobs (``KNOBS``) beside it:

- ``base``: packages, time sync, sysctl/ulimits for serving, the ``inferops`` service user
- ``nvidia_driver``: pinned driver branch, reboot only on change, mismatch detection
- ``cuda``: pinned CUDA toolkit and ``/etc/profile.d/cuda.sh``
- ``container_toolkit``: NVIDIA container toolkit + docker (optional)
- ``python_env``: the Python environment (``venv`` or Miniforge ``conda``)
- ``accelerators``: TensorRT / OpenVINO inside that environment, with import checks
- ``inference_server``: the reference server (or Triton, or vLLM via ``vllm_server``) as a
  hardened systemd unit
- ``node_exporter`` / ``dcgm_exporter``: metrics exporters as systemd units

Shared, bottom-level helpers (components never import each other): ``knobs``
(``Knob``, checks, ``knob()``), ``common``, ``layout`` (paths, service account, Python
env location), ``gpu`` (the GPU check), ``downloads`` (``download_verified()``),
``nvidia_repos``, ``ops``, ``facts``, ``platform``, ``artifacts``.

``deploys/cpu_node.py`` and ``deploys/gpu_node.py`` compose them; ``catalog`` collects
every knob declaration, from which ``group_data/all.py`` is generated and
``inferops.deploy.validate`` checks every host's data before any operation runs.
"""
