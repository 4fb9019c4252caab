"""One reader per file: the files edgebench reads are parsed only in their reader modules
(plumbing.schema.load_model for the YAML files, stack.state for state.json,
reports.contract for the results files). Pure: the product's source, parsed."""
import ast
import functools
from pathlib import Path

from tests import sources

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("edgebench", "reports", "stack", "profiling", "loadtests", "plumbing", "service")

# a file -> the one module that parses it (through load_model where it is YAML)
READERS = {
    "budgets.yml": "reports/budgets.py",
    "optimization-steps.yml": "edgebench/steps.py",
    "scrape.yml": "stack/scrape_config.py",
    "docker-compose.yml": "stack/compose.py",
    "state.json": "stack/state.py",
    **{name: "reports/contract.py" for name in ("manifest.json", "scenario.json", "summary.json",
                                                "capacity.json", "comparison.json", "steps.json")},
}
PARSERS = {("json", "load"), ("json", "loads"), ("yaml", "safe_load"), ("yaml", "load"), ("yaml", "full_load"),
           (None, "read_json")}
# the old collector sweep, retired with its two modules: they go, and this entry with them
def _parser(call: ast.Call) -> tuple | None:
    f = call.func
    if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and (f.value.id, f.attr) in PARSERS:
        return f.value.id, f.attr
    if isinstance(f, ast.Name) and (None, f.id) in PARSERS:
        return None, f.id
    return None


@functools.cache
def parses() -> list[tuple[str, int, tuple, str]]:
    """(module, line, parser, source of the statement) for every JSON/YAML parse in the product."""
    found = []
    for p in (f for pkg in PACKAGES for f in sorted((ROOT / pkg).rglob("*.py"))):
        rel = str(p.relative_to(ROOT))
        text = p.read_text()
        if not any(word in text for word in ("json.", "yaml.", "read_json")):
            continue
        lines = text.splitlines()
        for stmt in sources.nodes(p):
            if not isinstance(stmt, ast.stmt) or isinstance(stmt, (ast.FunctionDef, ast.ClassDef, ast.If, ast.For,
                                                                  ast.While, ast.With, ast.Try)):
                continue
            for call in (n for n in ast.walk(stmt) if isinstance(n, ast.Call)):
                if (which := _parser(call)) is not None:
                    found.append((rel, call.lineno, which, "\n".join(lines[stmt.lineno - 1:stmt.end_lineno])))
    return found


def test_yaml_is_parsed_in_one_place():
    """Every YAML file edgebench reads goes through plumbing.schema.load_model."""
    where = sorted({f"{m}:{line}" for m, line, (mod, _), _ in parses() if mod == "yaml" and m != "plumbing/schema.py"})
    assert where == [], f"yaml parsed outside plumbing/schema.py (use load_model): {where}"


def test_each_file_is_parsed_only_by_its_reader():
    found = parses()
    assert len(found) > 5          # the scan sees the product's parsers (the readers among them)
    wrong = [f"{m}:{line} parses {name} (its reader is {READERS[name]})"
             for m, line, _, src in found for name in READERS if name in src and m != READERS[name]]
    assert wrong == []
    # and each reader is found doing its reading, so the table above cannot go stale
    readers = {m for m, *_ in found}
    assert {"stack/state.py", "reports/contract.py", "plumbing/schema.py"} <= readers
