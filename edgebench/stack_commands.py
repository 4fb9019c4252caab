"""`make up` / `make down` / `make status`: the stack alone, through stack/'s own CLI."""
from __future__ import annotations

from stack.__main__ import main as stack_main


def up(args) -> int:
    argv = ["up", "--state-dir", args.state_dir, "--engine", args.engine]
    if args.variant:
        argv += ["--env", f"sensor-service:SENSOR_VARIANT={args.variant}"]
    code = stack_main(argv)
    if code == 0:
        print("edgebench: stack up; try: curl -s 'http://127.0.0.1:8428/api/v1/query?"
              "query=up&nocache=1'   (make status, make down)")
    return code


def down(args) -> int:
    return stack_main(["down", "--state-dir", args.state_dir])


def status(args) -> int:
    return stack_main(["status", "--state-dir", args.state_dir])
