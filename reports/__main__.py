"""python -m reports RUN_DIR [--out DIR]: re-render a run's summary.json and report/."""
from __future__ import annotations

import argparse
import sys
import time

from reports.load import ReportError


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m reports",
                                 description="Compute summary.json and render report/ for a results directory.")
    ap.add_argument("run_dir", help="a results/<run-id> directory (e.g. results/latest)")
    ap.add_argument("--out", default=None, help="output directory (default: RUN_DIR/report)")
    args = ap.parse_args(argv)
    from reports.render import render_run
    t0 = time.monotonic()
    try:
        paths = render_run(args.run_dir, args.out)
    except ReportError as e:
        print(f"edgebench report: error: {e}", file=sys.stderr)
        return 2
    for p in paths:
        print(p)
    print(f"edgebench report: {len(paths)} files in {time.monotonic() - t0:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
