"""plumbing.schema: the one refusal line every typed file shares. Pure."""
from typing import Literal

import pytest
from pydantic import Field

from plumbing.schema import Model, ValidationError, load_model, refusal


class Inner(Model):
    rate: float = 1.0
    mode: Literal["a", "b"] = "a"


class Outer(Model):
    name: str
    items: list[Inner] = []
    by_name: dict[str, Inner] = {}
    either: int | str | None = None
    global_: Inner = Field(Inner(), alias="global")


def line(data) -> str:
    with pytest.raises(ValidationError) as e:
        Outer.model_validate(data)
    text = refusal("f.yml", e.value, Outer)
    assert "\n" not in text and text.startswith("f.yml")
    return text


@pytest.mark.parametrize("data, expected", [
    ({"name": "x", "items": [{}, {"rat": 2}]},
     "f.yml: items[1]: unknown key 'rat' (known: rate, mode): fix the spelling or remove it"),
    ({"name": "x", "by_name": {"k": {"mode": "c"}}},
     "f.yml: by_name.k.mode: 'c' is not valid: input should be 'a' or 'b': correct the value"),
    ({"name": "x", "either": 1.5},       # the union's member tags are not keys of the file
     "f.yml: either: 1.5 is not valid: input should be a valid integer: correct the value"),
    ({"name": "x", "global": {"rate": "2"}},      # strict: no string for a number; the alias as written
     "f.yml: global.rate: '2' is not valid: input should be a valid number: correct the value"),
    ({"items": []}, "f.yml: 'name' is missing: add it"),
    ({"nme": "x"}, "f.yml: unknown key 'nme' (known: name, items, by_name, either, global): fix the spelling"),
])
def test_refusal_names_the_key_path_and_the_known_keys(data, expected):
    assert line(data).startswith(expected)


class Doc(Model):
    items: list[Inner]
    extra: Inner = Inner()


class Refused(Exception):
    pass


@pytest.mark.parametrize("text, expected", [
    ("items:\n  - {rate: 1}\n  - {rate: 2\n", "f.yml: invalid YAML at line 4 column 1: expected ',' or '}'"),
    ("- 1\n", "f.yml: no 'items:' section: write items"),
    ("extra: {}\n", "f.yml: no 'items:' section: write items"),
    ("items: [{rat: 2}]\n", "f.yml: items[0]: unknown key 'rat' (known: rate, mode): fix the spelling"),
])
def test_load_model_refuses_with_one_line(tmp_path, text, expected):
    p = tmp_path / "f.yml"
    p.write_text(text)
    with pytest.raises(Refused) as e:
        load_model(p, Doc, lambda r: Refused(r.line("f.yml")), needs="items", shape_fix="write items")
    assert str(e.value).startswith(expected) and "\n" not in str(e.value)


def test_load_model_reads_the_model_and_an_empty_section_is_its_default(tmp_path):
    p = tmp_path / "f.yml"
    p.write_text("items: [{rate: 2.5, mode: b}]\nextra:\n")
    doc = load_model(p, Doc, Refused, needs="items", shape_fix="")
    assert doc == Doc(items=[Inner(rate=2.5, mode="b")])
    with pytest.raises(Refused) as e:
        load_model(tmp_path / "nope.yml", Doc, lambda r: Refused(r.line("nope.yml")), needs="items", shape_fix="")
    assert str(e.value).startswith("nope.yml: cannot read the file (No such file or directory)")
