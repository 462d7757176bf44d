"""Every public model's fields and IbkrSession's methods are documented in docstrings, and docs/api.md's
reference part is generated from them (tools/api_reference.py) and up to date."""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path
from types import ModuleType

import pytest

from rxibkr.io.rest import IbkrSession
from rxibkr.streams import models

ROOT = Path(__file__).resolve().parents[2]


def tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("api_reference", ROOT / "tools" / "api_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


REFERENCE = tool()


def test_every_public_model_is_in_the_reference() -> None:
    assert set(REFERENCE.MODELS) == {n for n in models.__all__ if n != "DONE_STATUSES"}


@pytest.mark.parametrize("cls", [*(getattr(models, n) for n in REFERENCE.MODELS), IbkrSession], ids=str)
def test_every_field_property_and_method_is_documented(cls: type) -> None:
    class_doc = inspect.cleandoc(cls.__doc__ or "")
    undocumented = []
    for name, kind, obj in REFERENCE.public_members(cls):
        if kind == "field":
            if f"``{name}``" not in class_doc:
                undocumented.append(f"field {name} (not named in the class docstring)")
        elif not (obj.__doc__ or "").strip():
            undocumented.append(f"{kind} {name} (no docstring)")
    assert undocumented == []


def test_api_md_is_generated_from_the_docstrings() -> None:
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    assert REFERENCE.BEGIN in text, "run: python tools/api_reference.py"
    assert REFERENCE.current() == REFERENCE.render(), (
        "docs/api.md is stale: run python tools/api_reference.py"
    )
    for name in REFERENCE.MODELS:  # every field and property of every model is listed
        for member, _kind, _obj in REFERENCE.public_members(getattr(models, name)):
            assert f"| `{member}" in text, (name, member)
    for member in ("place_order", "reply", "cancel_order", "live_orders", "tickle", "snapshot"):
        assert f"| `{member}(" in text
