"""python -m stack up|down|status|supervise --state-dir DIR ...: a thin command line over
stack.api (start, stop) and stack.status_view (what it prints)."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .api import DEFAULT_COMPOSE, DEFAULT_STATE_DIR, start_stack, stop_all_stacks, stop_stack
from .compose import ComposeError
from .images import StackError
from .status_view import show_all_status, show_started, show_status, show_stopped


def _kv_port(text: str) -> tuple[str, int]:
    name, sep, port = text.partition("=")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"--port {text!r}: write SERVICE=PORT, e.g. sensor-service=18000")
    return name, int(port)


def _kv_env(text: str) -> tuple[str, str, str]:
    name, sep, kv = text.partition(":")
    k, sep2, v = kv.partition("=")
    if not sep or not sep2 or not k:
        raise argparse.ArgumentTypeError(f"--env {text!r}: write SERVICE:KEY=VALUE, e.g. sensor-service:SENSOR_VARIANT=baseline")
    return name, k, v


def _kv_arg(text: str) -> tuple[str, str]:
    name, sep, arg = text.partition("=")
    if not sep or not arg:
        raise argparse.ArgumentTypeError(f"--arg {text!r}: write SERVICE=FLAG, e.g. victoriametrics=-search.latencyOffset=1s")
    return name, arg


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m stack", description="Run docker-compose.yml's services under their limits.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("up", "down", "status", "supervise", "docker-watch"):
        p = sub.add_parser(name)
        p.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR,
                       help=f"state directory (default {DEFAULT_STATE_DIR})")
        if name == "up":
            p.add_argument("-f", "--compose", type=Path, default=DEFAULT_COMPOSE, help="compose file")
            p.add_argument("--engine", choices=("auto", "native", "docker"), default="auto")
            p.add_argument("--services", action="append", default=[],
                           help="services to start (comma-separated, repeatable); default: all active")
            p.add_argument("--profile", action="append", default=[], help="compose profile to activate")
            p.add_argument("--port", action="append", type=_kv_port, default=[], metavar="SVC=PORT")
            p.add_argument("--env", action="append", type=_kv_env, default=[], metavar="SVC:KEY=VALUE")
            p.add_argument("--arg", action="append", type=_kv_arg, default=[], metavar="SVC=FLAG",
                           help="extra argument appended to a service's command")
            p.add_argument("--timeout", type=float, default=30, help="seconds to wait for health")
        if name == "down":
            p.add_argument("--timeout", type=float, default=30)
        if name in ("down", "status"):
            p.add_argument("--all", action="store_true",
                           help="every stack edgebench started on this machine (the registry, then stray cgroups)")
        if name == "docker-watch":
            p.add_argument("--owner", type=int, default=None, help="tear the stack down when this pid is gone")
        if name == "status":
            p.add_argument("--json", action="store_true", help="print state.json")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "supervise":
            from .supervisor import main as supervise
            return supervise(args.state_dir)
        if args.cmd == "docker-watch":
            from .docker_engine import watch
            return watch(args.state_dir, args.owner)
        if args.cmd == "up":
            env: dict = {}
            for svc, k, v in args.env:
                env.setdefault(svc, {})[k] = v
            extra: dict = {}
            for svc, a in args.arg:
                extra.setdefault(svc, []).append(a)
            services = [s for item in args.services for s in item.split(",") if s]
            t0 = time.monotonic()
            h = start_stack(args.compose, args.state_dir, services=services or None, profiles=args.profile,
                            env=env, ports=dict(args.port), engine=args.engine, timeout=args.timeout,
                            extra_args=extra, detach=True)
            show_started(h.state(), args.state_dir, time.monotonic() - t0)
            return 0
        if args.cmd == "down":
            if args.all:
                stop_all_stacks(args.timeout)
                return 0
            show_stopped(stop_stack(args.state_dir, timeout=args.timeout), args.state_dir)
            return 0
        if args.all:
            return show_all_status()
        return show_status(args.state_dir, args.json)
    except ComposeError as e:
        print(f"edgebench stack: error: {e}", file=sys.stderr)
        return 2
    except StackError as e:
        print(f"edgebench stack: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("edgebench stack: interrupted; everything started was stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
