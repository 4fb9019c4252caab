"""`edgebench up`: the stack alone, in the background, until `edgebench down`."""
from __future__ import annotations

import argparse
from pathlib import Path

from stack.api import DEFAULT_STATE_DIR

NAME = "up"
HELP = "start the stack in the background"


def _kv_port(text: str) -> tuple[str, int]:
    name, sep, port = text.partition("=")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"--port {text!r}: write SERVICE=PORT, e.g. sensor-service=18000")
    return name, int(port)


def _kv_env(text: str) -> tuple[str, str, str]:
    name, sep, kv = text.partition(":")
    k, sep2, v = kv.partition("=")
    if not sep or not sep2 or not k:
        raise argparse.ArgumentTypeError(f"--env {text!r}: write SERVICE:KEY=VALUE, "
                                         f"e.g. sensor-service:SENSOR_VARIANT=baseline")
    return name, k, v


def _kv_arg(text: str) -> tuple[str, str]:
    name, sep, arg = text.partition("=")
    if not sep or not arg:
        raise argparse.ArgumentTypeError(f"--arg {text!r}: write SERVICE=FLAG, "
                                         f"e.g. victoriametrics=-search.latencyOffset=1s")
    return name, arg


def add_arguments(p) -> None:
    from stack.api import DEFAULT_COMPOSE
    p.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    p.add_argument("-f", "--compose", type=Path, default=DEFAULT_COMPOSE, help="compose file")
    p.add_argument("--engine", choices=("auto", "native", "docker"), default="auto")
    p.add_argument("--variant", default=None, help="baseline | optimized")
    p.add_argument("--services", action="append", default=[],
                   help="services to start (comma-separated, repeatable); default: all active")
    p.add_argument("--profile", action="append", default=[], help="compose profile to activate")
    p.add_argument("--port", action="append", type=_kv_port, default=[], metavar="SVC=PORT")
    p.add_argument("--env", action="append", type=_kv_env, default=[], metavar="SVC:KEY=VALUE")
    p.add_argument("--arg", action="append", type=_kv_arg, default=[], metavar="SVC=FLAG",
                   help="extra argument appended to a service's command")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds to wait for health (default: $EDGEBENCH_STACK_START_TIMEOUT_S, else 30)")


def run(args, command: str) -> int:
    import time

    from edgebench.commands._scope import stack_exit
    from stack.api import start_stack
    from stack.status_view import show_started

    env: dict = {}
    if args.variant:
        env["sensor-service"] = {"SENSOR_VARIANT": args.variant}
    for svc, k, v in args.env:
        env.setdefault(svc, {})[k] = v
    extra: dict = {}
    for svc, a in args.arg:
        extra.setdefault(svc, []).append(a)
    services = [s for item in args.services for s in item.split(",") if s]

    def up() -> int:
        t0 = time.monotonic()
        h = start_stack(args.compose, args.state_dir, services=services or None, profiles=args.profile,
                        env=env or None, ports=dict(args.port), engine=args.engine, timeout=args.timeout,
                        extra_args=extra, detach=True)
        show_started(h.state(), args.state_dir, time.monotonic() - t0)
        return 0

    code = stack_exit(up)
    if code == 0:
        print("edgebench: stack up; try: curl -s 'http://127.0.0.1:8428/api/v1/query?"
              "query=up&nocache=1'   (make status, make down)")
    return code
