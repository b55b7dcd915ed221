"""Build a model repository for MLServer: a small scikit-learn classifier.

Run with the *servers* venv's Python (``.venv-servers``, see
``scripts/install-test-servers``), whose scikit-learn MLServer will load the
model with: ``.venv-servers/bin/python tests/endpoints/mlserver_repo.py DIR PORT``.
Then ``.venv-servers/bin/mlserver start DIR`` serves model ``iris`` over
KServe v2 on 127.0.0.1:PORT (``POST /v2/models/iris/infer``, FP32 [-1, 4]).
The data are synthetic (4 features, 3 classes), so nothing is downloaded.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def build(root: Path, http_port: int, grpc_port: int) -> None:
    import joblib
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 4)) * 3
    x = np.concatenate([c + rng.normal(size=(50, 4)) for c in centers]).astype("float32")
    y = np.repeat(np.arange(3), 50)
    model_dir = root / "iris"
    model_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(LogisticRegression(max_iter=500).fit(x, y), model_dir / "model.joblib")
    (model_dir / "model-settings.json").write_text(
        json.dumps(
            {
                "name": "iris",
                "implementation": "mlserver_sklearn.SKLearnModel",
                "inputs": [{"name": "input-0", "datatype": "FP32", "shape": [-1, 4]}],
                "outputs": [{"name": "predict", "datatype": "INT64", "shape": [-1, 1]}],
                "parameters": {"uri": "./model.joblib", "version": "v1"},
            }
        )
    )
    (root / "settings.json").write_text(
        json.dumps(
            {
                "host": "127.0.0.1",
                "http_port": http_port,
                "grpc_port": grpc_port,
                "metrics_port": 0,
                "metrics_endpoint": None,
                # inference in the server process: no worker pool on a 2-core box
                "parallel_workers": 0,
                "debug": False,
            }
        )
    )


if __name__ == "__main__":
    build(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
