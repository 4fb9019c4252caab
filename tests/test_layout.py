"""The product packages hold only the product: every module in them is reached from a
product entry point (bin/edgebench, the Makefile, the Dockerfile, the compose file, CI and
the product's scripts), through imports or the modules the product spawns (`python -m X`,
the locustfile by path). A module reached only from tests/ belongs under tests/.
Pure: the product's source and entry files, parsed."""
import ast
import functools
import re
from pathlib import Path

from tests import sources

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("edgebench", "reports", "stack", "profiling", "loadtests", "plumbing", "service")
# files outside the packages that start the product (scripts inside the packages are added)
ENTRY_FILES = ("bin/edgebench", "Makefile", "Dockerfile", "docker-compose.yml", ".ci/run")
# `-m name` in a shell line, or "-m", "name" in an argv list
_DASH_M = re.compile(r"""-m["']?,?\s*["']?([A-Za-z_][\w.]*)""")
_PY_PATH = re.compile(r"([\w/]+\.py)\b")


@functools.cache
def modules() -> dict[str, Path]:
    """Dotted name -> file for every module of the product packages."""
    found = {}
    for pkg in PACKAGES:
        for p in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(p.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = p
    return found


def _spawned(name: str) -> set[str]:
    """What `python -m name` runs: the module, or a package's __main__ with its __init__."""
    mods = modules()
    return {n for n in (name, f"{name}.__main__") if n in mods}


@functools.cache
def _by_file() -> dict[Path, str]:
    return {p.resolve(): n for n, p in modules().items()}


def _by_path(text: str, base: Path) -> set[str]:
    """Product modules named by a .py path in text, relative to the root or to base."""
    by_file = _by_file()
    out = set()
    for m in _PY_PATH.finditer(text):
        for cand in (ROOT / m.group(1), base / m.group(1)):
            if cand.resolve() in by_file:
                out.add(by_file[cand.resolve()])
    return out


def _imports(name: str, path: Path) -> set[str]:
    """Modules this one imports (absolute and relative), spawns by `-m`, or names by path."""
    mods = modules()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in sources.nodes(path):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)  # `from pkg import submodule`
        elif isinstance(node, (ast.List, ast.Tuple)):             # [python, "-m", "stack.supervisor"]
            words = [e.value if isinstance(e, ast.Constant) else None for e in node.elts]
            out.update(*(_spawned(w) for w, prev in zip(words[1:], words) if prev == "-m" and isinstance(w, str)))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.endswith(".py"):
            out |= _by_path(node.value, path.parent)               # the locustfile by path
    return {m for m in out if m in mods}


def _with_parents(name: str) -> set[str]:
    """Importing a.b.c runs a and a.b first."""
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)} & modules().keys()


def entry_modules() -> set[str]:
    """Modules the entry files and the product's shell scripts start or copy into the image."""
    files = [ROOT / f for f in ENTRY_FILES] + [p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.sh"))]
    roots: set[str] = set()
    for f in files:
        text = f.read_text()
        for m in _DASH_M.finditer(text):
            roots |= _spawned(m.group(1))
        roots |= _by_path(text, f.parent)
    return roots


@functools.cache
def reached() -> frozenset[str]:
    mods = modules()
    todo = set().union(*(_with_parents(r) for r in entry_modules()))
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for dep in _imports(name, mods[name]):
            todo |= _with_parents(dep) - seen
    return frozenset(seen)


def test_the_entry_points_are_found():
    """The walk starts where the product starts: the CLI, the service and what they spawn."""
    roots = entry_modules()
    assert {"edgebench.__main__", "service.__main__"} <= roots, roots
    assert {"edgebench.cli", "stack.supervisor", "loadtests.locustfile", "loadtests.probe",
            "loadtests.synthetic_target"} <= reached()


def test_every_product_module_is_reached_from_an_entry_point():
    unreached = sorted(set(modules()) - reached())
    assert not unreached, ("product modules no entry point reaches (move them under tests/ "
                           f"or delete them): {', '.join(unreached)}")



@functools.lru_cache(maxsize=None)
def _defined(path: Path) -> set[str]:
    """Names a module binds at its top level (definitions, assignments, imports)."""
    names = set()
    for node in sources.tree(path).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            for t in (node.targets if isinstance(node, ast.Assign) else [node.target]):
                names |= {n.id for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, (ast.If, ast.Try)):
            names |= {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
            names |= {d.name for d in ast.walk(node) if isinstance(d, (ast.FunctionDef, ast.ClassDef))}
            names |= {(a.asname or a.name).split(".")[0] for d in ast.walk(node)
                      if isinstance(d, (ast.Import, ast.ImportFrom)) for a in d.names}
    return names


@functools.lru_cache(maxsize=None)
def _module_file(name: str) -> Path | None:
    base = ROOT.joinpath(*name.split("."))
    return next((p for p in (base.with_suffix(".py"), base / "__init__.py") if p.is_file()), None)


def test_every_import_of_a_project_module_names_one_that_exists():
    """Imports inside functions run only when their branch does (a gate's cost table, an
    error path): each `from X import Y` of the project names a module X that exists and
    that defines Y or has Y as a submodule."""
    roots = set(PACKAGES) | {"tests"}
    broken = []
    for path in [*(ROOT / p for p in PACKAGES), ROOT / "tests"]:
        for f in sorted(path.rglob("*.py")):
            for node in sources.imports(f):
                if not (isinstance(node, ast.ImportFrom) and node.module and node.level == 0
                        and node.module.split(".")[0] in roots):
                    continue
                target = _module_file(node.module)
                if target is None:
                    broken.append(f"{f.relative_to(ROOT)}:{node.lineno}: no module {node.module}")
                    continue
                defined = _defined(target)
                broken += [f"{f.relative_to(ROOT)}:{node.lineno}: {node.module} has no {a.name}"
                           for a in node.names if a.name != "*" and a.name not in defined
                           and _module_file(f"{node.module}.{a.name}") is None]
    assert not broken, "\n".join(broken)
