"""A private nginx that answers the law model's routes at once: the cheapest real HTTP
server at hand, so a generator benchmark on 2 cores leaves nearly both to the generators.

It serves what ``tests.load.lawserver`` serves with ``fixed:0`` (the metadata on GET, the
same JSON on POST ``.../infer`` and ``/predict``), from ``return`` directives: no upstream,
no body parsing. One nginx worker, pinned to ``cpu``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from tests.load.lawserver import META
from tests.load.procs import kill_group

REPLY = '{"model":"law","model_name":"law","outputs":[[0.5,0.5]]}'


def _conf(root: Path, port: int, cpu: int) -> str:
    return f"""
worker_processes 1;
worker_cpu_affinity {1 << cpu:b};
pid {root}/nginx.pid;
error_log {root}/error.log warn;
daemon off;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    keepalive_requests 1000000;
    default_type application/json;
    server {{
        listen 127.0.0.1:{port};
        location = /v2/models/law {{ return 200 '{json.dumps(META)}'; }}
        location = /v2/models/law/infer {{ return 200 '{REPLY}'; }}
        location = /predict {{ return 200 '{REPLY}'; }}
        location / {{ return 200 '{{"status":"ok"}}'; }}
    }}
}}
"""


class NginxTarget:
    def __init__(self, cpu: int = 0):
        from inferops.server.process import free_port

        self.root = Path(tempfile.mkdtemp(prefix="nginx-target-"))
        self.port = free_port()
        (self.root / "nginx.conf").write_text(_conf(self.root, self.port, cpu))
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        with open(self.root / "stderr.log", "wb") as stderr:  # errors before error.log opens
            self.proc = subprocess.Popen(
                [nginx, "-c", str(self.root / "nginx.conf"), "-p", str(self.root)],
                stderr=stderr,
                start_new_session=True,
            )
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 10
        while True:
            try:
                urllib.request.urlopen(self.url + "/v2/models/law", timeout=1).read()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    log = self._log()  # before stop() removes the directory
                    self.stop()
                    raise RuntimeError(f"nginx target did not start: {log}") from None
                time.sleep(0.1)

    def _log(self) -> str:
        logs = (self.root / name for name in ("stderr.log", "error.log"))
        return " ".join(path.read_text()[-500:] for path in logs if path.exists())

    def stop(self) -> None:
        kill_group(self.proc)  # nginx's master and its worker
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
