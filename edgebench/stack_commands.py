"""`make up` / `make down` / `make status`: the stack alone, through stack/'s own CLI.

`down` and `status` act on every stack edgebench started on this machine (make up,
bench, profile, gate: stack/registry.py), unless a state directory is named."""
from __future__ import annotations

from stack.__main__ import main as stack_main

from edgebench.cli import DEFAULT_STATE_DIR


def _scope(args) -> list[str]:
    """A named state directory: that stack only; the default: all of them."""
    if str(args.state_dir) != str(DEFAULT_STATE_DIR):
        return ["--state-dir", str(args.state_dir)]
    return ["--state-dir", str(args.state_dir), "--all"]


def up(args) -> int:
    argv = ["up", "--state-dir", args.state_dir, "--engine", args.engine]
    if getattr(args, "compose", None):
        argv += ["--compose", args.compose]
    if args.variant:
        argv += ["--env", f"sensor-service:SENSOR_VARIANT={args.variant}"]
    code = stack_main(argv)
    if code == 0:
        print("edgebench: stack up; try: curl -s 'http://127.0.0.1:8428/api/v1/query?"
              "query=up&nocache=1'   (make status, make down)")
    return code


def down(args) -> int:
    return stack_main(["down"] + _scope(args))


def status(args) -> int:
    return stack_main(["status"] + _scope(args))
