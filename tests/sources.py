"""The repository's Python sources, parsed once per test process: the structure tests
(layout, layers, readers, harness) walk the same files, and parsing them once for each
test was a quarter of the fast tier."""
import ast
import functools
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("edgebench", "reports", "stack", "profiling", "loadtests", "plumbing", "service")


@functools.cache
def python_files(*dirs: str) -> tuple[Path, ...]:
    """The .py files under each of ``dirs`` (relative to the repository), sorted."""
    return tuple(p for d in dirs for p in sorted((ROOT / d).rglob("*.py")))


@functools.cache
def tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


@functools.cache
def nodes(path: Path) -> tuple[ast.AST, ...]:
    """Every node of the module, in ast.walk's order (read only: the trees are shared)."""
    return tuple(ast.walk(tree(path)))


@functools.cache
def imports(path: Path) -> tuple[ast.Import | ast.ImportFrom, ...]:
    """The module's import statements, wherever they stand (inside functions too)."""
    return tuple(n for n in nodes(path) if isinstance(n, (ast.Import, ast.ImportFrom)))
