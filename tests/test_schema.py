"""plumbing.schema: the one refusal line every typed file shares. Pure."""
from typing import Literal

import pytest
from pydantic import Field

from plumbing.schema import Model, ValidationError, refusal


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
