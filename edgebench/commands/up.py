"""`edgebench up`: the stack alone, in the background, until `edgebench down`."""
from __future__ import annotations

from pathlib import Path

from stack.api import DEFAULT_STATE_DIR

NAME = "up"
HELP = "start the stack in the background"


def add_arguments(p) -> None:
    p.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    p.add_argument("--engine", choices=("auto", "native", "docker"), default="auto")
    p.add_argument("--variant", default=None, help="baseline | optimized")


def run(args, command: str) -> int:
    import time

    from edgebench.commands._scope import stack_exit
    from stack.api import DEFAULT_COMPOSE, start_stack
    from stack.status_view import show_started

    def up() -> int:
        t0 = time.monotonic()
        env = {"sensor-service": {"SENSOR_VARIANT": args.variant}} if args.variant else None
        h = start_stack(DEFAULT_COMPOSE, args.state_dir, env=env, engine=args.engine, detach=True)
        show_started(h.state(), args.state_dir, time.monotonic() - t0)
        return 0

    code = stack_exit(up)
    if code == 0:
        print("edgebench: stack up; try: curl -s 'http://127.0.0.1:8428/api/v1/query?"
              "query=up&nocache=1'   (make status, make down)")
    return code
