"""Inside the cgroup v2 guest: the Docker engine runs the stack on a real v2 kernel.

Run by tests/test_platform_docker_v2.py through the guest (``python -m
tests.platforms.docker_v2_checks OUT_DIR IMAGES_TAR``): one ``dockerd`` (the host's, through
the read-only root, its data root on the guest's /tmp, a tmpfs) serves every check; the stack's images
come from a ``docker save`` tarball made on the host and are never built here
(``EDGEBENCH_DOCKER_BUILD=0``: the guest has no network). Compose v2 (the plugin of
tests/platforms/compose_v2.py, through ``DOCKER_CONFIG``) runs up/status/down, the OOM
kill, the throttling, the peak and the short bench; docker-compose 1.29 runs up/status/
down once more. Like tests/platforms/cgroup2_checks.py it only records, into
``OUT_DIR/checks.json`` after each check; the host-side tests assert.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import traceback
from pathlib import Path

from plumbing.cgroup_counters import read_cgroups
from plumbing.wait import wait_until
from stack.api import start_stack
from stack.state import read_state
from tests.platforms.cgroup2_checks import LEAK_COMPOSE, _hammer, cg_files, cli, get, scrape_until_refused

REPO = Path(__file__).resolve().parents[2]
CONTAINERD_SOCK = "/run/containerd/containerd.sock"
# containerd is started here, not by dockerd: dockerd gives its own containerd 60 s to answer,
# which a busy host's guest exceeded ("failed to start containerd: timeout waiting")
CONTAINERD_ARGV = ["containerd", "--root", "/tmp/containerd", "--state", "/run/containerd", "--address",
                   CONTAINERD_SOCK, "--log-level", "warn"]
DOCKERD_ARGV = ["dockerd", "--containerd", CONTAINERD_SOCK, "--data-root", "/tmp/docker", "--bridge", "none", "--iptables=false", "--ip6tables=false", "--ip-forward=false",
                "--ip-masq=false", "--log-level", "warn"]
DOCKERD_TIMEOUT_S = 900   # first answer: 2 min on a quiet host, far more with both host cores busy
V2_FILES = ("memory.max", "memory.swap.max", "cpu.max")


def docker(*args, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *map(str, args)], capture_output=True, text=True, timeout=timeout)


def check_dockerd(work: Path, images_tar: Path, out_dir: Path) -> dict:
    """dockerd answers, on cgroup v2; the stack's images loaded from the host's tarball.
    Its log goes to OUT_DIR/dockerd.log, on the host as it is written."""
    t0 = time.monotonic()
    log = open(out_dir / "dockerd.log", "ab")
    ctrd = subprocess.Popen(CONTAINERD_ARGV, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    wait_until(lambda: subprocess.run(["ctr", "--address", CONTAINERD_SOCK, "version"], capture_output=True,
                                      timeout=60).returncode == 0 or ctrd.poll() is not None,
               DOCKERD_TIMEOUT_S, "containerd to answer", interval=1.0)
    if ctrd.poll() is not None:
        raise RuntimeError(f"containerd exited {ctrd.returncode}: {(out_dir / 'dockerd.log').read_text()[-1500:]}")
    print(f"containerd answered after {time.monotonic() - t0:.0f} s", flush=True)
    proc = subprocess.Popen(DOCKERD_ARGV, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    wait_until(lambda: docker("version", timeout=30).returncode == 0 or proc.poll() is not None,
               DOCKERD_TIMEOUT_S, "dockerd to answer", interval=1.0)
    print(f"dockerd answered after {time.monotonic() - t0:.0f} s", flush=True)
    if proc.poll() is not None:
        raise RuntimeError(f"dockerd exited {proc.returncode}: {(out_dir / 'dockerd.log').read_text()[-1500:]}")
    out: dict = {"answer_s": round(time.monotonic() - t0, 1)}
    info = docker("info", "--format", "{{json .}}")
    i = json.loads(info.stdout)
    out["info"] = {k: i.get(k) for k in ("ServerVersion", "CgroupVersion", "CgroupDriver", "Driver")}
    t1 = time.monotonic()
    load = docker("load", "-i", images_tar, timeout=1200)
    out["load"] = {"rc": load.returncode, "stdout": load.stdout[-2000:], "stderr": load.stderr[-2000:],
                   "seconds": round(time.monotonic() - t1, 1)}
    out["images"] = sorted(docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split())
    out["compose_v2"] = docker("compose", "version", "--short", timeout=60).stdout.strip()
    return out


def container_view(cid: str) -> dict:
    """The v2 files of a container's own cgroup, read by the container itself (where it has cat)."""
    r = docker("exec", cid, "cat", *(f"/sys/fs/cgroup/{f}" for f in V2_FILES), timeout=120)
    return {"rc": r.returncode, "values": r.stdout.split(), "stderr": r.stderr[-300:]}


def _up_status_down(work: Path, tag: str, env: dict) -> dict:
    """`edgebench up --engine docker`, each container's v2 files (its own view and the
    cgroup edgebench located), `status`, `down`; with the compose command ``env`` selects."""
    old = dict(os.environ)
    os.environ.update(env)
    try:
        state_dir = work / f"up-{tag}"
        out: dict = {"up": cli("up", "--engine", "docker", "--state-dir", state_dir, timeout=900)}
        state = read_state(state_dir)
        st = state.model_dump() if state else {}
        out["state"] = {k: st.get(k) for k in ("engine", "status", "compose_cmd", "cgroup_version",
                                               "counters_source", "project")}
        services = {}
        for name, s in (st.get("services") or {}).items():
            d = (s.get("cgroups") or {}).get("unified")
            c = read_cgroups(s.get("cgroups")) if s.get("cgroups") else None
            services[name] = {
                "container_id": s.get("container_id"), "pid": s.get("pid"), "health": s.get("health"),
                "cgroup_dir": d, "files": cg_files(d, (*V2_FILES, "cgroup.procs")) if d else None,
                "counters": {"mem_limit_bytes": c.mem_limit_bytes, "cpus": c.cpus, "mem_bytes": c.mem_bytes,
                             "source": c.source} if c else None,
                "inside": container_view(s["container_id"]) if s.get("container_id") else None,
            }
        out["services"] = services
        out["status"] = cli("status", "--state-dir", state_dir, timeout=300)
        out["down"] = cli("down", "--state-dir", state_dir, timeout=600)
        project = out["state"]["project"]
        out["left_after_down"] = docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={project}"
                                        ).stdout.split() if project else None
        return out
    finally:
        os.environ.clear()
        os.environ.update(old)


def check_up_compose_v2(work: Path, images_tar: Path) -> dict:
    return _up_status_down(work, "compose-v2", {})


def check_up_compose_v1(work: Path, images_tar: Path) -> dict:
    """The same with docker-compose 1.29: no plugin in an empty Docker config directory."""
    empty = work / "docker-config-empty"
    empty.mkdir(exist_ok=True)
    return _up_status_down(work, "compose-v1", {"DOCKER_CONFIG": str(empty)})


def check_oom(work: Path, images_tar: Path) -> dict:
    """The service leaking 4 MB per scrape under 40 MB: the kernel kills it in its container,
    Docker's `oom` event is counted and the container restarts."""
    compose = work / "oom-compose.yml"
    compose.write_text(textwrap.dedent(LEAK_COMPOSE.format(repo=REPO)))
    out: dict = {}
    with start_stack(compose, work / "oom-state", ports={"sensor-service": 18100}, engine="docker",
                     timeout=600) as h:
        s0 = h.service("sensor-service")
        out["before"] = {"pid": s0.pid, "memory.max": cg_files(s0.cgroups["unified"], ("memory.max",)),
                         "oom_kills": s0.oom_kills, "restarts": s0.restarts}
        out["scrapes_before_failure"] = scrape_until_refused("http://127.0.0.1:18100/metrics", timeout=30)
        s = wait_until(lambda: (lambda x: x if x.restarts >= 1 and x.oom_kills >= 1
                                and x.status == "running" else None)(h.service("sensor-service")),
                       300, "the OOM kill and the restart in state.json")
        out["after"] = {"pid": s.pid, "restarts": s.restarts, "oom_kills": s.oom_kills, "status": s.status}

        def kinds() -> list[str]:
            return [json.loads(x)["event"] for x in (work / "oom-state" / "events.jsonl").read_text().splitlines()]
        wait_until(lambda: "oom" in kinds() and kinds().count("start") >= 2, 120,
                   "the oom and the second start in events.jsonl")
        out["events"] = kinds()
        out["inspect"] = {k: v for k, v in json.loads(docker("inspect", s.container_id).stdout)[0].items()
                          if k == "RestartCount"}
        wait_until(lambda: _answers("http://127.0.0.1:18100/healthz"), 300, "healthz after the restart")
        out["healthz_after_restart"] = get("http://127.0.0.1:18100/healthz", timeout=30).decode()[:200]
    return out


def _answers(url: str) -> bool:
    try:
        return bool(get(url, timeout=10))
    except OSError:
        return False


def check_throttle_and_peak(work: Path, images_tar: Path) -> dict:
    """The baseline service at 0.5 CPU under /metrics load: Δnr_throttled / Δnr_periods in the
    container's cpu.stat; its memory.peak against memory.current."""
    out: dict = {}
    with start_stack(REPO / "docker-compose.yml", work / "thr-state", services=["sensor-service"],
                     env={"sensor-service": {"SENSOR_VARIANT": "baseline"}}, ports={"sensor-service": 18200},
                     engine="docker", timeout=600) as h:
        s = h.service("sensor-service")
        d = s.cgroups["unified"]
        out["cpu.max"] = cg_files(d, ("cpu.max",))["cpu.max"]
        c0 = read_cgroups(s.cgroups)
        out["requests"] = _hammer("http://127.0.0.1:18200/metrics", 8)
        c1 = read_cgroups(s.cgroups)
        f = cg_files(d, ("cpu.stat", "memory.peak", "memory.current"))
        out.update({"cpu.stat": f["cpu.stat"], "memory.peak": f["memory.peak"], "memory.current": f["memory.current"]})
        out["counters"] = {
            "before": {"nr_periods": c0.nr_periods, "throttled_periods": c0.throttled_periods,
                       "cpu_seconds": c0.cpu_seconds},
            "after": {"nr_periods": c1.nr_periods, "throttled_periods": c1.throttled_periods,
                      "cpu_seconds": c1.cpu_seconds, "mem_peak_bytes": c1.mem_peak_bytes,
                      "usage_bytes": c1.usage_bytes, "source": c1.source},
        }
    return out


def check_bench(work: Path, images_tar: Path, out_dir: Path) -> dict:
    """`edgebench bench --engine docker`, short, its report rendered here."""
    results = out_dir / "bench"
    results.mkdir(exist_ok=True)
    r = cli("bench", "--engine", "docker", "--duration", "8", "--warmup", "2", "--scenarios", "optimized-vm",
            "--results", results, timeout=1800)
    return {"bench": r, "results": str(results)}


CHECKS = {"dockerd": check_dockerd, "up_compose_v2": check_up_compose_v2, "oom": check_oom,
          "throttle_and_peak": check_throttle_and_peak, "bench": check_bench, "up_compose_v1": check_up_compose_v1}


def main() -> int:
    out_dir, images_tar = Path(sys.argv[1]), Path(sys.argv[2])
    only = sys.argv[3].split(",") if len(sys.argv) > 3 else list(CHECKS)
    work = Path("/tmp/edgebench-docker-v2-checks")
    work.mkdir(parents=True, exist_ok=True)
    # Compose v2 writes under $DOCKER_CONFIG (buildx/): a writable one holding a link to the plugin
    config = work / "docker-config"
    (config / "cli-plugins").mkdir(parents=True, exist_ok=True)
    plugin = Path(os.environ["DOCKER_CONFIG"]) / "cli-plugins" / "docker-compose"
    (config / "cli-plugins" / "docker-compose").symlink_to(plugin)
    os.environ["DOCKER_CONFIG"] = str(config)
    results: dict = {}
    for name in only:
        t0 = time.monotonic()
        try:
            args = (work, images_tar, out_dir) if name in ("dockerd", "bench") else (work, images_tar)
            results[name] = {"ok": True, **CHECKS[name](*args)}
        except BaseException as e:  # record and go on: the host asserts on what was seen
            results[name] = {"ok": False, "error": "".join(traceback.format_exception(e))[-3000:]}
        results[name]["seconds"] = round(time.monotonic() - t0, 2)
        print(f"check {name}: {'ok' if results[name]['ok'] else 'FAILED'} in {results[name]['seconds']} s",
              flush=True)
        (out_dir / "checks.json").write_text(json.dumps(results, indent=2, default=str))
        if name == "dockerd" and not results[name]["ok"]:
            break   # nothing else can run
    return 0


if __name__ == "__main__":
    sys.exit(main())
