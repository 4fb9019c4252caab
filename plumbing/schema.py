"""Typed config files: one base model that refuses unknown keys, and one refusal line.

Every file edgebench reads (budgets.yml, the steps file, scrape.yml, the compose subset,
state.json) is a :class:`Model`: strict types (no ``"45"`` for a number, no ``true`` for
one), frozen, and an unknown key is an error, so a typo such as ``min_efect`` is never
taken as a default. :func:`refusal` turns pydantic's ``ValidationError`` into
edgebench's one line: file, key path, problem, fix; for an unknown key, the keys known
there::

    budgets.yml: budgets[2]: unknown key 'min_efect' (known: metric, max, why, over): fix the spelling or remove it

:func:`load_model` is the one way a YAML file becomes its model: read, parse (a syntax
error names its line and column), check the shape, validate; each step's refusal is one
:class:`Refusal`, which the caller turns into its own error.
"""
from __future__ import annotations

import os
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

__all__ = ["Model", "Refusal", "refusal", "refusal_parts", "known_keys", "load_model", "ValidationError"]

M = TypeVar("M", bound=BaseModel)


class Model(BaseModel):
    """Strict, frozen, and no key it does not name."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def known_keys(model: type[BaseModel]) -> list[str]:
    """The keys a file may spell for ``model``, in declaration order (aliases as written)."""
    return [f.alias or name for name, f in model.model_fields.items()]


@dataclass(frozen=True)
class Refusal:
    """One refusal, split so each file's error can lay it out its own way."""
    where: str       # the key path ("budgets[2]", "ab.alpha"); "" for the whole file
    problem: str
    fix: str

    def line(self, file: str | os.PathLike) -> str:
        head = f"{file}: {self.where}" if self.where else str(file)
        return " ".join(f"{head}: {self.problem}: {self.fix}".split())


def refusal(file: str | os.PathLike, err: ValidationError, model: type[BaseModel]) -> str:
    """The first problem in ``err`` (from validating ``model``) as one line naming the file."""
    return refusal_parts(err, model).line(file)


def refusal_parts(err: ValidationError, model: type[BaseModel]) -> Refusal:
    """The first problem in ``err`` as (key path, problem, fix)."""
    errors = err.errors(include_url=False)
    # a typo shows as an unknown key and as the missing key it was meant to be: name the typo
    e = next((x for x in errors if x["type"] == "extra_forbidden"), errors[0])
    loc = tuple(e["loc"])
    kind = e["type"]
    if kind in ("extra_forbidden", "missing"):
        parent, key = loc[:-1], loc[-1]
        path, target = _walk(model, parent)
        known = known_keys(target) if target is not None else []
        shown = f" (known: {', '.join(known)})" if known else ""
        if kind == "extra_forbidden":
            return Refusal(path, f"unknown key {str(key)!r}{shown}", "fix the spelling or remove it")
        return Refusal(path, f"{str(key)!r} is missing", "add it")
    path, _ = _walk(model, loc)
    error = (e.get("ctx") or {}).get("error")
    if isinstance(error, ValueError):   # a validator's own words: "problem: fix"
        return Refusal(path, *_split(str(error)))
    msg = re.sub(r" or instance of \w+", "", e["msg"])
    msg = msg[0].lower() + msg[1:]
    return Refusal(path, f"{_short(e.get('input'))} is not valid: {msg}", "correct the value")


def load_model(path: str | os.PathLike, model: type[M], error: Callable[[Refusal], Exception], *,
               needs: str, shape_fix: str, missing_fix: str = "pass the path of an existing file") -> M:
    """``path`` (YAML) as ``model``, or ``error(refusal)`` raised: the file cannot be read, is
    not YAML (with the line and column), is not a mapping with a ``needs`` key (``shape_fix``
    says what to write), or does not validate. A top-level key left empty
    (``ab:`` with nothing under it) counts as absent, so it takes its default."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise error(Refusal("", f"cannot read the file ({e.strerror})", missing_fix)) from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        what = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise error(Refusal("", f"invalid YAML{where}: {what}", "correct the YAML syntax there")) from None
    if not isinstance(doc, dict) or doc.get(needs) is None:
        raise error(Refusal("", f"no '{needs}:' section", shape_fix))
    try:
        return model.model_validate({k: v for k, v in doc.items() if v is not None})
    except ValidationError as e:
        raise error(refusal_parts(e, model)) from None


def _split(text: str) -> tuple[str, str]:
    """A validator message "problem: fix" (the last ': ' separates them)."""
    problem, sep, fix = text.rpartition(": ")
    return (problem, fix) if sep else (text, "correct the value")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _walk(model: type[BaseModel], loc: tuple) -> tuple[str, type[BaseModel] | None]:
    """Follow ``loc`` from ``model``: the path as a file spells it ("a.b[2].c") and the model
    at its end (None where it ends at a plain value). Union member tags pydantic inserts
    into ``loc`` ('int', 'str', a model's name) are skipped."""
    tp: Any = model
    path = ""
    for part in loc:
        nxt = _step(tp, part)
        if nxt is _TAG:
            continue
        tp = nxt
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path, _model_in(tp)


_TAG = object()


def _members(tp: Any) -> list:
    """The types a (possibly Optional/Union/Annotated) annotation stands for."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _members(typing.get_args(tp)[0])
    if origin is typing.Union or origin is types.UnionType:
        return [m for a in typing.get_args(tp) for m in _members(a)]
    return [tp]


def _model_in(tp: Any) -> type[BaseModel] | None:
    for m in _members(tp):
        if isinstance(m, type) and issubclass(m, BaseModel):
            return m
    return None


def _step(tp: Any, part: Any) -> Any:
    members = _members(tp)
    for m in members:
        if isinstance(m, type) and issubclass(m, BaseModel) and isinstance(part, str):
            for name, f in m.model_fields.items():
                if part in (name, f.alias):
                    return f.annotation
        origin, args = typing.get_origin(m), typing.get_args(m)
        if origin in (list, tuple) and isinstance(part, int):
            return args[0] if args else Any
        if origin is dict and isinstance(part, str):
            return args[1] if len(args) > 1 else Any
    if len(members) > 1 and isinstance(part, str):
        return _TAG          # a union member's tag, not a key of the file
    return Any
