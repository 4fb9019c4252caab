"""The files of one collector-comparison step (pure: files only): the shipped and tuned
configuration of each collector, side by side, each scraping one synthetic target.

*shipped* is the collector exactly as docker-compose.yml defines it. *tuned* is what its
vendor recommends for a 150 MB / 0.5 CPU device, with the same memory-limit policy for
both (docs/capacity.md, "The collector comparison", cites each flag):

- both: ``GOMEMLIMIT`` at 90 % of the compose memory limit (Go >= 1.19 reads it; both
  Debian binaries are built with Go 1.19.8), so the garbage collector works harder
  before the kernel's limit instead of after it;
- VictoriaMetrics: ``-promscrape.streamParse=true`` (parse every scrape in chunks, the
  first one too) and its own ``GOGC=30`` written out;
- Prometheus: ``GOGC=75``, the default Prometheus 2.53 adopted for its memory.

Each variant is a service ``<collector>-<config>`` with its own scrape config, whose
jobs add ``?c=<service>`` to every scrape, so the target tells whose scrape it served.
"""
from __future__ import annotations

import copy
from pathlib import Path

import yaml

from loadtests.synthetic_target import shard_sizes, spread_sizes
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
CONFIGS = ("shipped", "tuned")
SHAPES = ("one-target", "many-targets")
SPREAD = (500, 2000)        # many-targets: each target 500 to 2,000 series
GOMEMLIMIT_FRACTION = 0.9
TUNED_FLAGS = {"victoriametrics": ["-promscrape.streamParse=true"], "prometheus": []}
TUNED_GOGC = {"victoriametrics": "30", "prometheus": "75"}


class CollectorStepError(EdgebenchError):
    """A collector step that cannot be set up; one line naming the fix."""


def check_collector(collector: str) -> None:
    if collector not in COLLECTORS:
        raise CollectorStepError(f"collector {collector!r} is unknown; fix: use one of {', '.join(COLLECTORS)}")


def deployed_collector(collector: str, compose_path: Path = DEPLOYMENT_COMPOSE) -> tuple[dict, dict]:
    """(the collector's compose service as docker-compose.yml writes it, its scrape config
    mounted from ``./scrape.yml``; the synthetic target's service): the collector keeps
    the deployment's image, command, limits and restart policy; the target runs from the
    sensor-service image (built from this checkout) with no limits, outside them."""
    check_collector(collector)
    compose_path = Path(compose_path)
    deployed = load_compose(compose_path, profiles=("prometheus",))
    raw = deployed.document()
    svc = deployed.all_services.get(collector)
    source = deployed.all_services.get(IMAGE_SOURCE)
    if svc is None or source is None:
        raise CollectorStepError(f"{compose_path}: service '{collector if svc is None else IMAGE_SOURCE}' "
                                 f"is missing; fix: restore it from git (the collector comparison reads it)")
    spec = {k: copy.deepcopy(v) for k, v in raw["services"][collector].items() if k in KEPT_KEYS}
    volumes = []
    for v in svc.volumes:
        if v.kind == "bind" and Path(v.source).is_file() and Path(v.source).suffix in (".yml", ".yaml"):
            volumes.append(f"./scrape.yml:{v.target}:ro")   # the step's scrape config, beside this file
        elif v.kind == "bind":
            volumes.append(f"{v.source}:{v.target}" + (":ro" if v.read_only else ""))
        else:
            volumes.append(f"{v.source or collector + '-data'}:{v.target}")
    spec["volumes"] = volumes
    spec["depends_on"] = [TARGET]
    target = {"image": source.image,
              "command": ["python", "-m", "loadtests.synthetic_target"],
              "environment": {"SENSOR_HOST": "0.0.0.0", "SENSOR_PORT": str(TARGET_PORT)},
              "ports": [f"127.0.0.1:{TARGET_PORT}:{TARGET_PORT}"],
              "restart": "no"}
    if source.build:
        build = {"context": source.build["context"]}
        if source.build.get("dockerfile"):
            build["dockerfile"] = source.build["dockerfile"]
        target = {"build": build, **target}
    return spec, target


def variant_name(collector: str, config: str) -> str:
    return f"{collector}-{config}"


def parse_variant(name: str) -> tuple[str, str]:
    collector, _, config = name.rpartition("-")
    check_collector(collector)
    if config not in CONFIGS:
        raise CollectorStepError(f"variant {name!r}: configuration {config!r} is unknown; fix: use one of "
                                 f"{', '.join(CONFIGS)}, e.g. prometheus-tuned")
    return collector, config


def target_sizes(n_series: int, shape: str, seed: int = 1) -> list[int]:
    """Series per scrape target of ``shape``: all N in one target, or N over targets of
    500 to 2,000 series."""
    if shape == "one-target":
        return shard_sizes(n_series, n_series)
    if shape == "many-targets":
        return spread_sizes(n_series, *SPREAD, seed=seed)
    raise CollectorStepError(f"shape {shape!r} is unknown; fix: use one of {', '.join(SHAPES)}")


def mem_limit_bytes(spec: dict) -> int | None:
    from stack.compose import parse_bytes
    return parse_bytes(spec.get("mem_limit")) if spec.get("mem_limit") is not None else None


def tune(collector: str, spec: dict) -> dict:
    """The tuned configuration of a collector's compose service (a copy)."""
    spec = copy.deepcopy(spec)
    limit = mem_limit_bytes(spec)
    if limit is None:
        raise CollectorStepError(f"{collector} has no mem_limit in docker-compose.yml; fix: restore it "
                                 f"(the tuned configuration sets GOMEMLIMIT from it)")
    env = dict(spec.get("environment") or {})
    env["GOMEMLIMIT"] = str(int(limit * GOMEMLIMIT_FRACTION))
    env["GOGC"] = TUNED_GOGC[collector]
    spec["environment"] = env
    spec["command"] = list(spec.get("command") or []) + TUNED_FLAGS[collector]
    return spec


def scrape_config(variant: str, sizes: list[int], scrape_path: Path = DEPLOYMENT_SCRAPE) -> dict:
    """One job per target at ``synthetic-target:8000`` (the deployment's interval and
    timeout), each scrape marked ``?c=<variant>``."""
    from stack.scrape_config import load_scrape
    glob = load_scrape(scrape_path).global_.model_dump(exclude_unset=True)
    jobs = [{"job_name": f"synthetic-{i}", "metrics_path": f"/metrics/{i}", "params": {"c": [variant]},
             "static_configs": [{"targets": [f"{TARGET}:{TARGET_PORT}"]}]} for i in range(len(sizes))]
    return {"global": glob, "scrape_configs": jobs}


def _other_host_port(port: str, index: int) -> str:
    """``127.0.0.1:8428:8428`` -> ``127.0.0.1:<8428 + 10 * index>:8428``."""
    parts = str(port).split(":")
    if len(parts) == 3 and parts[1].isdigit():
        parts[1] = str(int(parts[1]) + 10 * index)
    return ":".join(parts)


def comparison_compose(variants: list[str], n_series: int, shape: str, seed: int = 1,
                       compose_path: Path = DEPLOYMENT_COMPOSE) -> dict:
    """The step's compose document: every variant and the synthetic target."""
    services: dict = {}
    volumes: dict = {}
    target = None
    for i, v in enumerate(variants):
        collector, config = parse_variant(v)
        spec, target = deployed_collector(collector, compose_path)
        if config == "tuned":
            spec = tune(collector, spec)
        spec["volumes"] = [f"./scrape-{v}.yml:{vol.split(':', 2)[1]}:ro" if vol.startswith("./scrape.yml:")
                           else f"{v}-data:{vol.split(':', 1)[1]}" for vol in spec["volumes"]]
        volumes.update({f"{v}-data": {} for vol in spec["volumes"] if vol.startswith(f"{v}-data:")})
        # one host port each (the step passes free ones; a file must not publish one twice)
        spec["ports"] = [_other_host_port(p, i) for p in spec.get("ports") or []]
        services[v] = spec
    cmd = list(target["command"]) + ["--series", str(n_series), "--seed", str(seed)]
    if shape == "many-targets":
        cmd = cmd + ["--spread", f"{SPREAD[0]}-{SPREAD[1]}"]
    else:
        cmd = cmd + ["--shard-series", str(n_series)]
    target = {**target, "command": cmd}
    return {"services": {TARGET: target, **services}, "volumes": volumes}


def write_step_files(step_dir: Path, variants: list[str], n_series: int, shape: str, seed: int = 1,
                     compose_path: Path = DEPLOYMENT_COMPOSE, scrape_path: Path = DEPLOYMENT_SCRAPE) -> Path:
    """``docker-compose.yml`` and one ``scrape-<variant>.yml`` per variant in ``step_dir``."""
    step_dir = Path(step_dir)
    sizes = target_sizes(n_series, shape, seed)
    doc = comparison_compose(variants, n_series, shape, seed, compose_path)
    for v in variants:
        write_atomic(step_dir / f"scrape-{v}.yml", yaml.safe_dump(scrape_config(v, sizes, scrape_path),
                                                                   sort_keys=False))
    out = step_dir / "docker-compose.yml"
    header = (f"# Generated by edgebench's collector comparison from {compose_path}: "
              f"{', '.join(variants)} side by side,\n# {n_series:,} synthetic series in {len(sizes)} target(s).\n")
    write_atomic(out, header + yaml.safe_dump(doc, sort_keys=False))
    return out
