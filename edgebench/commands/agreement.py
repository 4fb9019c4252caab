"""`edgebench agreement`: Locust against an independent client (loadtests/probe.py) on the
same service at the same time, so Locust's latencies can be trusted on this machine
(docs/loadtests.md)."""
from __future__ import annotations

NAME = "agreement"
HELP = "Locust's /metrics latencies beside an independent client's, on a running service"


def add_arguments(p) -> None:
    p.add_argument("--target", default="http://127.0.0.1:8000")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", default=15.0, help="steady seconds per round (default %(default)s)")
    p.add_argument("--scrapers", default=4)
    p.add_argument("--rate", default=1.0, help="scrapes/s per scraper (default %(default)s)")


def run(args, command: str) -> int:
    from loadtests.agreement import agreement
    from loadtests.spec import LoadError, check_load, check_url
    if args.rounds < 1:
        raise LoadError(f"--rounds {args.rounds}: run at least one round, e.g. --rounds 3")
    target = check_url(args.target, "--target")
    spec = check_load({"duration_s": "--seconds", "scrapers": "--scrapers", "scrape_rate": "--rate"},
                      duration_s=args.seconds, warmup_s=1.0, scrapers=args.scrapers, scrape_rate=args.rate,
                      sensor_users=0)
    agreement(target, args.rounds, spec, say=lambda line: print(line, flush=True))
    return 0
