"""edgebench stack: run docker-compose.yml's services under their limits
(natively in cgroups v1/v2, or with docker compose). See docs/stack.md."""
from .compose import Compose, ComposeError, load_compose  # noqa: F401
from .images import StackError  # noqa: F401

__all__ = ["load_compose", "Compose", "ComposeError", "StackError"]
