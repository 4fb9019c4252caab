"""The compose file and scrape config of one collector capacity step (pure: files only).

The collector service is copied from docker-compose.yml, the single source of truth for
its image, command, limits and restart policy; only its scrape-config mount (now the
step's generated scrape.yml), its dependency (the synthetic target) and its profile (none:
the step starts it by name) change. The synthetic target is a service of the
sensor-service image (built from this checkout) with no limits: it runs outside them, so
the collector is the only thing measured. The scrape interval and timeout come from
stack/scrape.yml, the config the collectors run with in the deployment.
"""
from __future__ import annotations

import copy
from pathlib import Path

import yaml

from edgebench.capacity.synthetic_target import DEFAULT_SHARD_SERIES, shard_sizes
from plumbing.errors import EdgebenchError
from plumbing.files import write_atomic
from stack.compose import load_compose

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOYMENT_COMPOSE = REPO_ROOT / "docker-compose.yml"
DEPLOYMENT_SCRAPE = REPO_ROOT / "stack" / "scrape.yml"
COLLECTORS = ("victoriametrics", "prometheus")
TARGET = "synthetic-target"
TARGET_PORT = 8000
IMAGE_SOURCE = "sensor-service"   # the service whose image (and build) runs the target
# what a collector keeps from the deployment file, as written there
KEPT_KEYS = ("image", "command", "entrypoint", "environment", "ports", "restart", "mem_limit",
             "memswap_limit", "cpus", "deploy", "healthcheck")


class CollectorStepError(EdgebenchError):
    """A collector step that cannot be set up; one line naming the fix."""


def check_collector(collector: str) -> None:
    if collector not in COLLECTORS:
        raise CollectorStepError(f"collector {collector!r} is unknown; fix: use one of {', '.join(COLLECTORS)}")


def scrape_config(n_series: int, scrape_path: Path = DEPLOYMENT_SCRAPE,
                  shard_series: int = DEFAULT_SHARD_SERIES) -> dict:
    """The step's scrape config: the deployment's global section (interval, timeout), one
    job per shard of the synthetic target, all at ``synthetic-target:8000``."""
    doc = yaml.safe_load(Path(scrape_path).read_text()) or {}
    jobs = [{"job_name": f"synthetic-{i}", "metrics_path": f"/metrics/{i}",
             "static_configs": [{"targets": [f"{TARGET}:{TARGET_PORT}"]}]}
            for i in range(len(shard_sizes(n_series, shard_series)))]
    return {"global": dict(doc.get("global") or {}), "scrape_configs": jobs}


def collector_compose(collector: str, n_series: int, seed: int = 1,
                      compose_path: Path = DEPLOYMENT_COMPOSE,
                      shard_series: int = DEFAULT_SHARD_SERIES) -> dict:
    """The step's compose document: ``collector`` as the deployment file defines it, and
    the synthetic target serving ``n_series`` series."""
    check_collector(collector)
    compose_path = Path(compose_path)
    raw = yaml.safe_load(compose_path.read_text())
    deployed = load_compose(compose_path, profiles=("prometheus",))
    svc = deployed.all_services.get(collector)
    source = deployed.all_services.get(IMAGE_SOURCE)
    if svc is None or source is None:
        raise CollectorStepError(f"{compose_path}: service '{collector if svc is None else IMAGE_SOURCE}' "
                                 f"is missing; fix: restore it from git (the capacity sweep reads it)")
    spec = {k: copy.deepcopy(v) for k, v in raw["services"][collector].items() if k in KEPT_KEYS}
    volumes, named = [], {}
    for v in svc.volumes:
        if v.kind == "bind" and Path(v.source).is_file() and Path(v.source).suffix in (".yml", ".yaml"):
            volumes.append(f"./scrape.yml:{v.target}:ro")   # the step's scrape config, beside this file
        elif v.kind == "bind":
            volumes.append(f"{v.source}:{v.target}" + (":ro" if v.read_only else ""))
        else:
            name = v.source or f"{collector}-data"
            named[name] = {}
            volumes.append(f"{name}:{v.target}")
    spec["volumes"] = volumes
    spec["depends_on"] = [TARGET]

    build = {"context": source.build["context"]} if source.build else None
    if build and source.build.get("dockerfile"):
        build["dockerfile"] = source.build["dockerfile"]
    target = {"image": source.image,
              "command": ["python", "-m", "edgebench.capacity.synthetic_target", "--series", str(n_series),
                          "--seed", str(seed), "--shard-series", str(shard_series)],
              "environment": {"SENSOR_HOST": "0.0.0.0", "SENSOR_PORT": str(TARGET_PORT)},
              "ports": [f"127.0.0.1:{TARGET_PORT}:{TARGET_PORT}"],
              "restart": "no"}
    if build:
        target = {"build": build, **target}
    return {"services": {TARGET: target, collector: spec}, "volumes": named}


def write_step_files(step_dir: Path, collector: str, n_series: int, seed: int = 1,
                     compose_path: Path = DEPLOYMENT_COMPOSE, scrape_path: Path = DEPLOYMENT_SCRAPE,
                     shard_series: int = DEFAULT_SHARD_SERIES) -> Path:
    """Write ``docker-compose.yml`` and ``scrape.yml`` into ``step_dir``; the compose path."""
    step_dir = Path(step_dir)
    doc = collector_compose(collector, n_series, seed, compose_path, shard_series)
    header = (f"# Generated by edgebench's collector capacity step: {collector} from {compose_path}\n"
              f"# (limits, image, command unchanged) scraping {n_series:,} synthetic series.\n")
    write_atomic(step_dir / "scrape.yml", yaml.safe_dump(scrape_config(n_series, scrape_path, shard_series),
                                                         sort_keys=False))
    out = step_dir / "docker-compose.yml"
    write_atomic(out, header + yaml.safe_dump(doc, sort_keys=False))
    return out
