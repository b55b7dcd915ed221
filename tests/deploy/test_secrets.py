"""No secret reaches pyinfra's output: ``--diff`` prints every uploaded text file, so the
bearer token must never be uploaded through an operation that diffs.

Op-level here (fake host, pyinfra's own logging); ``tests/realhost`` greps the real
``pyinfra --diff`` output of a deploy to a booted host for the token as well.
"""

from __future__ import annotations

import logging

from pyinfra.api import Config

from inferops.deploy.artifacts import ensure_token
from inferops.deploy.inference_server import inference_server

from .harness import run
from .profiles import profile


def test_diff_shows_the_config_but_never_the_token(caplog, tiny_model, fake_wheel):
    token = ensure_token("node1").read_text().strip()
    data = {"server_model_path": str(tiny_model), "inferops_wheel": str(fake_wheel)}
    with caplog.at_level(logging.DEBUG, logger="pyinfra"):
        result = run([inference_server], profile("debian12"), data, config=Config(DIFF=True))
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert result.has_command("-> /etc/inferops/token")  # the token is uploaded ...
    assert "INFEROPS_MODEL_NAME=tiny" in logged  # ... while --diff shows other files ...
    assert token not in logged, "the token is in pyinfra's --diff output"  # ... never the token
    assert token[:12] not in logged
    assert "/etc/inferops/token (a secret: content not shown)" in logged
