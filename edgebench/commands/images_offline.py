"""`edgebench images-offline` (make images-offline): the stack's images built locally where
no image registry answers (stack/images_offline.py, docs/stack.md "Docker engine")."""
from __future__ import annotations

NAME = "images-offline"
HELP = "build the stack's images locally where no image registry answers"


def add_arguments(p) -> None:
    from stack.images_offline import REPO_ROOT
    p.add_argument("-f", "--compose", default=str(REPO_ROOT / "docker-compose.yml"))
    p.add_argument("--force", action="store_true", help="rebuild images that exist")


def run(args, command: str) -> int:
    import time
    from pathlib import Path

    from edgebench.commands._scope import stack_exit
    from stack.images_offline import build_all

    def build() -> int:
        t0 = time.monotonic()
        made = build_all(Path(args.compose), args.force)
        print(f"offline images ready ({', '.join(made) or 'all existed'}) in {time.monotonic() - t0:.0f} s")
        return 0

    return stack_exit(build)
