"""The stock generators both load-generator benchmarks run beside inferops.

One request body, one stock-Locust locustfile and one `hey` command line, so
accuracy and capacity compare against the very same baselines.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

BODY = '{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[0.1,0.2,0.3,0.4]}]}'
INFER_PATH = "/v2/models/law/infer"
STOCK_LOCUSTFILE = f"""
from locust import FastHttpUser, constant, task
class Stock(FastHttpUser):
    wait_time = constant(0)
    @task
    def infer(self):
        self.client.post("{INFER_PATH}", data={BODY!r},
                         headers={{"Content-Type": "application/json"}})
"""


def stock_locust_command(url: str, users: int, seconds: float, work: Path) -> tuple[list[str], str]:
    """Stock Locust (FastHttpUser, closed loop) headless; returns (argv, csv prefix)."""
    locustfile = work / "stock_locustfile.py"
    locustfile.write_text(STOCK_LOCUSTFILE)
    prefix = str(work / "stock")
    argv = [
        str(Path(sys.executable).parent / "locust"),
        "-f",
        str(locustfile),
        "--headless",
        "-u",
        str(users),
        "-r",
        str(users),
        "-t",
        f"{int(seconds)}s",
        "-H",
        url,
        "--csv",
        prefix,
        "--only-summary",
    ]
    return argv, prefix


def stock_locust_aggregate(prefix: str) -> dict:
    """The "Aggregated" row of Locust's final ``<prefix>_stats.csv``."""
    with open(f"{prefix}_stats.csv", newline="") as fh:
        return {r["Name"]: r for r in csv.DictReader(fh)}["Aggregated"]


def hey_command(url: str, users: int, seconds: float) -> list[str]:
    """`hey` (closed loop, ``users`` connections) POSTing the same body for ``seconds``."""
    return [
        "hey",
        "-z",
        f"{int(seconds)}s",
        "-c",
        str(users),
        "-m",
        "POST",
        "-T",
        "application/json",
        "-d",
        BODY,
        f"{url}{INFER_PATH}",
    ]
