"""`edgebench up`: the stack alone, in the background, until `edgebench down`."""
from __future__ import annotations

from stack.api import DEFAULT_STATE_DIR

NAME = "up"
HELP = "start the stack in the background"


def add_arguments(p) -> None:
    p.add_argument("--state-dir", default=str(DEFAULT_STATE_DIR))
    p.add_argument("--engine", default="auto")
    p.add_argument("--variant", default=None, help="baseline | optimized")


def run(args, command: str) -> int:
    from stack.__main__ import main as stack_main
    argv = ["up", "--state-dir", args.state_dir, "--engine", args.engine]
    if args.variant:
        argv += ["--env", f"sensor-service:SENSOR_VARIANT={args.variant}"]
    code = stack_main(argv)
    if code == 0:
        print("edgebench: stack up; try: curl -s 'http://127.0.0.1:8428/api/v1/query?"
              "query=up&nocache=1'   (make status, make down)")
    return code
