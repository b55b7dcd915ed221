#!/usr/bin/env python3
"""Post-change check for a systemd-managed HTTP service (uploaded by inferops' pyinfra deploy).

Passes only when, for ``--stable`` consecutive probes one second apart:

- the unit is active with the same main PID (a crash-looping unit fails),
- ``GET <url>`` answers 200, and
- with ``--port``, the socket listening on that port belongs to a process in the
  unit's cgroup (so another daemon on the same port cannot fake a pass).

On failure it prints ``systemctl status`` and the journal and exits 1.
Standard library only: it runs with the host's ``python3``.
"""

from __future__ import annotations

import argparse
import glob
import os
import subprocess
import sys
import time
import urllib.request


def listening_inodes(port: int) -> set[str]:
    """Socket inodes in LISTEN state (0A) on ``port`` from /proc/net/tcp{,6}."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as handle:
                next(handle)
                for line in handle:
                    fields = line.split()
                    local, state, inode = fields[1], fields[3], fields[9]
                    if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                        inodes.add(inode)
        except OSError:
            continue
    return inodes


def pids_owning(inodes: set[str]) -> set[int]:
    owners = set()
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for fd in glob.glob("/proc/[0-9]*/fd/*"):
        try:
            if os.readlink(fd) in wanted:
                owners.add(int(fd.split("/")[2]))
        except OSError:
            continue
    return owners


def in_unit(pid: int, unit: str) -> bool:
    try:
        with open(f"/proc/{pid}/cgroup") as handle:
            return any(line.rstrip().endswith(f"/{unit}") for line in handle)
    except OSError:
        return False


def port_owned_by(port: int, unit: str) -> bool:
    owners = pids_owning(listening_inodes(port))
    return bool(owners) and any(in_unit(pid, unit) for pid in owners)


def http_ok(url: str, token: str | None = None) -> bool:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def main_pid(unit: str) -> str:
    result = subprocess.run(
        ["systemctl", "show", "-p", "MainPID", "--value", unit], capture_output=True, text=True
    )
    return result.stdout.strip()


def active(unit: str) -> bool:
    return subprocess.run(["systemctl", "is-active", "--quiet", unit]).returncode == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--unit", required=True, help="e.g. inferops-server.service")
    parser.add_argument("--url", required=True, action="append", help="each must answer 200")
    parser.add_argument("--token-file", help="send its content as the bearer token")
    parser.add_argument("--port", type=int, help="also require the unit to own this port")
    parser.add_argument("--attempts", type=int, default=60)
    parser.add_argument("--stable", type=int, default=3)
    args = parser.parse_args(argv)
    token = None
    if args.token_file:
        with open(args.token_file) as handle:
            token = handle.read().strip()
    where = " ".join(args.url)

    streak, last_pid = 0, None
    for _ in range(args.attempts):
        pid = main_pid(args.unit)
        ok = (
            active(args.unit)
            and pid not in ("", "0")
            and all(http_ok(url, token) for url in args.url)
            and (args.port is None or port_owned_by(args.port, args.unit))
        )
        streak = streak + 1 if ok and pid == last_pid else (1 if ok else 0)
        last_pid = pid if ok else None
        if streak >= args.stable:
            print(f"{args.unit} ready at {where} (pid {pid})")
            return 0
        time.sleep(1)
    subprocess.run(["systemctl", "status", "--no-pager", args.unit])
    subprocess.run(["journalctl", "-u", args.unit, "-n", "40", "--no-pager"])
    print(f"{args.unit} not ready at {where}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
