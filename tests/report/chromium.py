"""A minimal headless-Chromium driver over the DevTools protocol (CDP), for tests.

Playwright's browsers cannot be downloaded here, so this talks to Debian's
``chromium`` directly: start it with ``--remote-debugging-port=0``, read the
port it picked from ``DevToolsActivePort``, attach to the page over a
websocket, and record console messages, exceptions, log entries and every
network request while a page loads.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import websocket

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
]


class Chromium:
    """``with Chromium() as browser: page = browser.load(path)``."""

    def __init__(self, width: int = 1280, height: int = 2400, timeout: float = 30.0):
        self.width, self.height, self.timeout = width, height, timeout
        self._ids = 0

    def __enter__(self) -> Chromium:
        self._profile = tempfile.mkdtemp(prefix="inferops-chromium-")
        self.proc = subprocess.Popen(
            [
                CHROMIUM,
                *FLAGS,
                f"--user-data-dir={self._profile}",
                f"--window-size={self.width},{self.height}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            self._connect()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        try:
            if getattr(self, "ws", None):
                self.ws.close()
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)  # chromium forks helpers; kill them all
            self.proc.wait(timeout=10)
            shutil.rmtree(self._profile, ignore_errors=True)

    def _connect(self) -> None:
        port_file = Path(self._profile) / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited early with {self.proc.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError("chromium did not open its DevTools port")
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:
            targets = json.load(resp)
        page = next(t for t in targets if t["type"] == "page")
        self.ws = websocket.create_connection(
            page["webSocketDebuggerUrl"], timeout=self.timeout, suppress_origin=True
        )

    def call(self, method: str, params: dict | None = None, *, events: list | None = None):
        """Send one CDP command and return its result; events seen meanwhile are kept."""
        self._ids += 1
        my_id = self._ids
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params or {}}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == my_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if events is not None and "method" in msg:
                events.append(msg)

    def load(self, path: str | Path) -> dict:
        """Open a file, wait for load; return sections, errors, requests and a screenshot."""
        events: list = []
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable", events=events)
        url = Path(path).resolve().as_uri()
        self.call("Page.navigate", {"url": url}, events=events)
        deadline = time.monotonic() + self.timeout
        while not any(e["method"] == "Page.loadEventFired" for e in events):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not finish loading")
            events.append(json.loads(self.ws.recv()))
        sections = self.call(
            "Runtime.evaluate",
            {
                "expression": "JSON.stringify(Array.from(document.querySelectorAll('section[id]'))"
                ".map(s => ({id: s.id, height: s.getBoundingClientRect().height,"
                " text: s.innerText.length, svgs: s.querySelectorAll('svg').length})))",
                "returnByValue": True,
            },
            events=events,
        )["result"]["value"]
        shot = self.call("Page.captureScreenshot", {"format": "png"}, events=events)
        errors = []
        for e in events:
            p = e.get("params", {})
            if e["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                errors.append(
                    " ".join(str(a.get("value", a.get("description"))) for a in p["args"])
                )
            elif e["method"] == "Runtime.exceptionThrown":
                errors.append(p["exceptionDetails"].get("text", "exception"))
            elif e["method"] == "Log.entryAdded" and p["entry"]["level"] == "error":
                errors.append(p["entry"]["text"])
        requests = [
            e["params"]["request"]["url"]
            for e in events
            if e["method"] == "Network.requestWillBeSent"
        ]
        return {
            "sections": json.loads(sections),
            "errors": errors,
            "requests": requests,
            "screenshot": base64.b64decode(shot["data"]),
        }
