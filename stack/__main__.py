"""python -m stack up|down|status|supervise --state-dir DIR ..."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from . import registry
from .api import DEFAULT_COMPOSE, DEFAULT_STATE_DIR, read_state, start_stack, stop_stack, supervisor_alive
from .cgroup_limits import ServiceCgroup, remove_paths
from .compose import ComposeError
from .images import StackError


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


def _mb(n) -> str:
    return "-" if n in (None, 0) else f"{n / 1048576:.1f}M"


def cmd_down_all(timeout: float) -> int:
    """Stop every stack edgebench started on this machine: each registered stack (a stale
    entry's leftovers are cleaned from its state directory), then any stack cgroup no entry
    explains and no live supervisor owns. Says what it stopped."""
    stopped = 0
    for e in registry.entries():
        alive = registry.entry_alive(e)
        st = read_state(e["state_dir"])
        stop_stack(e["state_dir"], timeout=timeout)
        registry.unregister(e["stack_id"])
        names = ", ".join((st or {}).get("services", {})) or "no service"
        print(f"stopped stack {e['stack_id']} ({names}; state {e['state_dir']})"
              + ("" if alive else " - its supervisor was already gone: cleaned what it left"))
        stopped += 1
    known = {e["stack_id"] for e in registry.entries()}
    for name, info in registry.unexplained_cgroups(known).items():
        if info["supervisor"]:
            stopped += 1  # said something
            print(f"left running: cgroup {name} belongs to a live supervisor (pid {info['supervisor']}) "
                  f"that is not registered here (another checkout); stop it there")
            continue
        ok = remove_paths(info["paths"])
        print(f"removed leftover cgroup {name}" + (f" and killed pids {info['pids']}" if info["pids"] else "")
              + ("" if ok else " (NOT removed: still busy)"))
        stopped += 1
    if not stopped:
        print("no stack running: nothing to stop")
    return 0


def cmd_status_all(args) -> int:
    """Every registered stack, then stray stack cgroups."""
    found = registry.entries()
    for e in found:
        ns = argparse.Namespace(**{**vars(args), "state_dir": Path(e["state_dir"]), "json": False})
        if not registry.entry_alive(e):
            print(f"stack {e['stack_id']} (state {e['state_dir']}): STALE, its supervisor is gone; "
                  f"`make down` cleans it")
            continue
        cmd_status(ns)
    strays = registry.unexplained_cgroups({e["stack_id"] for e in found})
    for name, info in strays.items():
        owner = f"supervisor pid {info['supervisor']}" if info["supervisor"] else "no supervisor: left over"
        print(f"cgroup {name}: pids {info['pids'] or '-'} ({owner})")
    if not found and not strays:
        print("no stack running")
        return 1
    return 0


def cmd_status(args) -> int:
    st = read_state(args.state_dir)
    if not st:
        print(f"no stack in {args.state_dir}")
        return 1
    if args.json:
        print(json.dumps(st, indent=1))
        return 0
    alive = supervisor_alive(st) if st.get("engine") == "native" else st.get("status") == "running"
    print(f"stack {st.get('stack_id')} engine={st.get('engine')} status={st.get('status')}"
          f"{'' if alive or st.get('engine') != 'native' else ' (supervisor not running)'} "
          f"cgroup v{st.get('cgroup_version')} limits_enforced={st.get('limits_enforced')}")
    if st.get("limits_enforced") is False:
        print("warning: running UNCONFINED, memory and CPU limits are NOT enforced")
    if st.get("error"):
        print(f"error: {st['error']}")
    stats = {}
    if st.get("engine") == "docker" and st.get("status") == "running" and st.get("counters_source") != "cgroup":
        from .docker_engine import stats as dstats
        try:
            stats = dstats(st)
        except StackError as e:
            print(f"warning: {e}")
    # CPU % over a short window from the cgroup counters (docker stats semantics)
    cgs = {n: ServiceCgroup(2 if "unified" in s["cgroups"] else 1, s["cgroups"])
           for n, s in st["services"].items() if s.get("cgroups") and alive}
    cpu0 = {n: cg.counters().cpu_seconds or 0.0 for n, cg in cgs.items()}
    t0 = time.monotonic()
    if cgs:
        time.sleep(0.5)
    dt = time.monotonic() - t0
    print(f"{'service':<18}{'status':<12}{'health':<9}{'pid':>8} {'url':<24}{'mem':>9}{'limit':>9}"
          f"{'cpus':>6}{'cpu%':>7}{'cpu_s':>9}{'restarts':>9}{'ooms':>6}")
    for n, s in st["services"].items():
        mem = cpu_pct = cpu_s = None
        if n in cgs:
            try:
                now = cgs[n].counters()
                mem, c = now.mem_bytes, now.cpu_seconds or 0.0
                cpu_s, cpu_pct = c, 100 * (c - cpu0[n]) / dt
            except (OSError, KeyError):
                pass
        elif alive and s.get("pid") and st.get("engine") == "native":  # unconfined: the process itself
            try:
                import psutil
                pr = psutil.Process(s["pid"])
                procs = [pr] + pr.children(recursive=True)
                mem = sum(p.memory_info().rss for p in procs)
                cpu_s = sum(sum(p.cpu_times()[:2]) for p in procs)
            except Exception:
                pass
        elif n in stats or (s.get("container_id") and any(s["container_id"].startswith(v["id"])
                                                          for v in stats.values())):
            d = stats.get(n) or next(v for v in stats.values() if s["container_id"].startswith(v["id"]))
            mem, cpu_pct = d["mem_bytes"], d["cpu_percent"]
        print(f"{n:<18}{s.get('status', '?'):<12}{s.get('health') or '-':<9}{s.get('pid') or '-':>8} "
              f"{s.get('url') or '-':<24}{_mb(mem):>9}{_mb(s.get('mem_limit_bytes')):>9}"
              f"{s.get('cpus') if s.get('cpus') is not None else '-':>6}"
              f"{'-' if cpu_pct is None else f'{cpu_pct:.1f}':>7}{'-' if cpu_s is None else f'{cpu_s:.2f}':>9}"
              f"{s.get('restarts', 0):>9}{s.get('oom_kills', 0):>6}")
    return 0


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
            st = h.state()
            print(f"stack {st['stack_id']} up ({st['engine']}) in {time.monotonic() - t0:.1f}s; "
                  f"state {args.state_dir}/state.json")
            for n, s in st["services"].items():
                print(f"  {n}: {s['url']} pid {s.get('pid') or s.get('container_id')}")
            return 0
        if args.cmd == "down":
            if args.all:
                return cmd_down_all(args.timeout)
            st = stop_stack(args.state_dir, timeout=args.timeout)
            print(f"stack {st.get('stack_id')} stopped" if st else f"no stack in {args.state_dir}")
            return 0
        if args.all:
            return cmd_status_all(args)
        return cmd_status(args)
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
