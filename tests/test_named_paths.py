"""Every repository path the docs name, and every one named in the product packages' docstrings,
comments and messages, exists: a moved or deleted file leaves no pointer behind.

A path counts when it starts at a word boundary with one of the repository's own top-level
entries (``stack/compose.py``, ``docs/gate.md``, ``requirements.txt``) and ends in a file
name with an extension, or names one of its folders with a trailing slash. Paths inside a run
or a scenario directory (``<run>/stack/state.json``) start after a ``/`` or a placeholder and
are not repository paths; nor is anything with a placeholder or a glob in it. Markdown links
in docs/ are resolved from the page they are on."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("service", "stack", "loadtests", "profiling", "reports", "edgebench", "plumbing")


def _tracked() -> list[str]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if out.returncode == 0 and out.stdout.strip():
        return out.stdout.splitlines()
    return [str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file() and ".venv" not in p.parts]


TOP = sorted({p.split("/", 1)[0] for p in _tracked()})
_FILES = "|".join(re.escape(t) for t in TOP if (ROOT / t).is_file())
_DIRS = "|".join(re.escape(t) for t in TOP if (ROOT / t).is_dir())
# a top-level file, or a top-level folder and its segments ending in name.ext or in "/"
PATH = re.compile(rf"(?<![\w/.<>{{}}*$~-])((?:{_FILES})|(?:{_DIRS})/(?:[\w+-]+/)*(?:[\w.+-]*\.[A-Za-z0-9]{{1,5}})?)"
                  rf"(?![\w/*<{{-])")
PLACEHOLDER = re.compile(r"[<>{}*…]|\.\.\.")
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def named_paths(text: str) -> set[str]:
    found = set()
    for m in PATH.finditer(text):
        if not PLACEHOLDER.search(m.group(1)):
            found.add(m.group(1))
    return found


def missing(name: str, path: str, base: Path = ROOT) -> list[str]:
    target = (base / path).resolve()
    return [] if target.exists() else [f"{name}: {path}"]


def test_the_pattern_finds_repository_paths_and_skips_run_paths():
    text = ("see stack/compose.py and `docs/gate.md`, (edgebench/schema.py), requirements.txt; "
            "results/<run>/stack/state.json, <scenario>/stack/state.json, f'{run}/docs/x.md', "
            "docs/*.md, service/ and stack, stack.api, stack/state, https://x.org/stack/a.py")
    assert named_paths(text) == {"stack/compose.py", "docs/gate.md", "edgebench/schema.py", "requirements.txt",
                                 "service/"}


def test_every_path_named_in_the_docs_exists():
    bad, checked = [], 0
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = doc.read_text()
        name = str(doc.relative_to(ROOT))
        for p in named_paths(text):
            bad += missing(name, p)
            checked += 1
        for link in LINK.findall(text):
            if "://" not in link and not link.startswith("mailto:"):
                bad += missing(name, link, doc.parent)
    assert checked > 100   # the pattern still finds the paths the docs name
    assert not bad, "named but not in the repository:\n" + "\n".join(sorted(set(bad)))


def test_every_path_named_in_the_product_packages_and_requirements_exists():
    bad, checked = [], 0
    files = [f for pkg in PACKAGES for f in sorted((ROOT / pkg).rglob("*.py"))]
    for f in files:
        for p in named_paths(f.read_text()):   # code names no repository path outside its strings
            bad += missing(str(f.relative_to(ROOT)), p)
            checked += 1
    assert checked > 50
    for f in (ROOT / "requirements.txt", ROOT / "Makefile", ROOT / "pyproject.toml"):
        bad += [m for p in named_paths(f.read_text()) for m in missing(f.name, p)]
    assert not bad, "named but not in the repository:\n" + "\n".join(sorted(set(bad)))
