"""``python -m tests.hosts up|down|status``: the test fleet by hand (``make hosts``).

``up`` boots N hosts (default 2) on 10.231.0.0/24 and writes the SSH key,
known_hosts, a standalone pyinfra ``inventory.py`` and a ``fleet.toml`` for the
repository's ``inventory.py`` into ``.hosts/`` (override with ``--workdir``).
``down`` stops them and removes the network; ``status`` lists them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tests.hosts.fleet import Fleet

MANUAL_SLOT = 0  # pytest claims a free slot in 1-6, the provision benchmark in 20-25


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.hosts", description=__doc__)
    parser.add_argument("action", choices=("up", "down", "status"))
    parser.add_argument("-n", "--hosts", type=int, default=2, help="how many hosts (up)")
    parser.add_argument(
        "--slot",
        type=int,
        default=MANUAL_SLOT,
        help="subnet 10.231.SLOT.0/24 (default 0; pytest takes 1-6)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path(".hosts"),
        help="where the key, inventory and state go (default .hosts/)",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.hosts <= 50:
        print(f"error: --hosts must be between 1 and 50, got {args.hosts}", file=sys.stderr)
        return 2
    if not 0 <= args.slot <= 255:
        print(f"error: --slot must be between 0 and 255, got {args.slot}", file=sys.stderr)
        return 2
    fleet = Fleet("node", args.slot, args.workdir.resolve(), size=args.hosts)
    try:
        if args.action == "up":
            fleet.up()
            for host in fleet.hosts:
                print(f"{host.name}  {host.ip}  ssh -F {fleet.ssh_config} {host.ip}")
            print(
                f"INFEROPS_FLEET={fleet.fleet_toml} .venv/bin/pyinfra inventory.py deploys/cpu_node.py"
            )
            print(f"wrote {fleet.workdir}/ (key, known_hosts, inventory.py, fleet.toml)")
        elif args.action == "down":
            fleet.down()
            print(f"fleet stopped; network {fleet.net.cidr} removed")
        else:
            if not fleet.state_path.exists():
                print("no fleet is up (make hosts)")
                return 0
            fleet.load_state()
            running = {h.name for h in fleet.running()}
            for host in fleet.hosts:
                print(f"{host.name}  {host.ip}  {'running' if host.name in running else 'stopped'}")
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
