"""`edgebench load`: the load alone, against a service already running anywhere (no stack,
no limits): requests.csv.gz, Locust's output and its log, for a manual look."""
from __future__ import annotations

from pathlib import Path

NAME = "load"
HELP = "drive the load against a running service (no stack): requests.csv.gz"


def add_arguments(p) -> None:
    p.add_argument("--target", default="http://127.0.0.1:8000", help="service URL (default %(default)s)")
    p.add_argument("--out", required=True, type=Path, help="output directory (requests.csv.gz, locust/, logs/)")
    p.add_argument("--duration", default=30.0, help="steady seconds (default %(default)s)")
    p.add_argument("--warmup", default=5.0, help="warm-up seconds, excluded (default %(default)s)")
    p.add_argument("--scrapers", default=1, help="/metrics scrapers (default %(default)s)")
    p.add_argument("--scrape-rate", default=1.0, help="scrapes/s per scraper (default %(default)s)")
    p.add_argument("--sensor-users", default=4, help="/sensor clients (default %(default)s)")
    p.add_argument("--sensor-rate", default=5.0, help="requests/s per client (default %(default)s)")
    p.add_argument("--workers", default=0, help="Locust worker processes, 0 = one process")
    p.add_argument("--request-timeout", default=10.0, help="per-request timeout s (default %(default)s)")


def _progress(d: dict) -> None:
    import sys
    p95 = "-" if d.get("p95_ms") is None else f"{d['p95_ms']:.1f} ms"
    sys.stderr.write(f"\r[{d['phase']:>8}] {d['elapsed']:6.1f}s elapsed {d['remaining']:6.1f}s left "
                     f"{d['rps']:7.1f} req/s p95 {p95:>10} requests {d['requests']} failures {d['failures']}   ")
    sys.stderr.flush()


def run(args, command: str) -> int:
    import json
    import signal
    import sys

    from loadtests.runner import run_load
    from loadtests.spec import FLAGS, check_load, check_url
    from plumbing.process import sigterm_as_ctrl_c

    # `kill <pid>` stops a manual run as cleanly as Ctrl-C (Locust stopped, samples kept)
    sigterm_as_ctrl_c()
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:  # started in the background by a shell
        signal.signal(signal.SIGINT, signal.default_int_handler)
    # the flags are checked here, once, and reach the runner typed (a LoadError: one line, exit 2)
    target = check_url(args.target, FLAGS["target"])
    spec = check_load(FLAGS, duration_s=args.duration, warmup_s=args.warmup, scrapers=args.scrapers,
                      scrape_rate=args.scrape_rate, sensor_users=args.sensor_users,
                      sensor_rate=args.sensor_rate, workers=args.workers, request_timeout=args.request_timeout)
    try:
        result = run_load(target, args.out, spec, on_progress=_progress if sys.stderr.isatty() else None)
    except KeyboardInterrupt as exc:
        res = getattr(exc, "load_result", None)
        print(f"\nedgebench load: interrupted; {res.samples if res else 0} samples kept in {args.out}",
              file=sys.stderr)
        return 130
    sys.stderr.write("\n")
    print(json.dumps(result.to_dict(), indent=2))
    return 0
