"""A chapter's parameters checked against the types its parameters cell annotates (papermill).

Papermill's ``-r`` passes raw strings (``-r evaluate False`` is the true string ``'False'``) and
``-p seeds 3`` an int where a list is asked: each is one line naming the parameter, what it got
and the form to pass, before any data is read. A chapter calls, after its parameters cell::

    check_parameters(globals(), __annotations__)
"""
from __future__ import annotations

import types
import typing
from numbers import Integral, Real

from .config import ConfigError

_SCALARS = {bool: "a bool", int: "an int", float: "a number", str: "a string"}
_PLURALS = {bool: "bools", int: "ints", float: "numbers", str: "strings"}
_LIST_EXAMPLES = {int: "[0, 1, 2]", float: "[0.5, 1.0]", str: "[a, b]", bool: "[true, false]"}


def _optional(kind) -> tuple:
    """(the type inside ``Optional[...]`` / ``X | None``, whether None is allowed)."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        inner = [arg for arg in typing.get_args(kind) if arg is not type(None)]
        if len(inner) == 1 and len(typing.get_args(kind)) == 2:
            return inner[0], True
    return kind, False


def _is(value, kind) -> bool:
    """``value`` is of the scalar ``kind``; a bool is no int (``epochs=True`` is no 1)."""
    if kind is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind is int:
        return isinstance(value, Integral)
    if kind is float:
        return isinstance(value, Real)
    return isinstance(value, kind)


def _got(value) -> str:
    return f"the string {value!r}" if isinstance(value, str) else \
        f"{type(value).__name__} {value!r}"


def _scalar_form(name: str, value, kind) -> str:
    """How to pass a ``kind`` on papermill's command line, the wrong value's text reused."""
    text = str(value).strip() if isinstance(value, (str, Integral, Real)) else None
    if kind is bool:
        text = text.capitalize() if text and text.lower() in ("true", "false") else "True"
        return f"-p {name} {text}"
    if kind is str:
        return f"-r {name} {text if text else 'TEXT'}"
    example = text if text and _parses(text, kind) else ("3" if kind is int else "0.001")
    return f"-p {name} {example}"


def _parses(text: str, kind) -> bool:
    try:
        kind(text)
    except ValueError:
        return False
    return True


def check_parameter(name: str, value, kind):
    """``value`` if it is of the annotated ``kind`` (an int is accepted as a float), else a
    ConfigError: ``'<name> must be <kind>, got <value>; pass <the form>'``."""
    inner, none_allowed = _optional(kind)
    if value is None and none_allowed:
        return None
    none = f" or None (-p {name} None)" if none_allowed else ""
    if typing.get_origin(inner) is list:
        (element,) = typing.get_args(inner) or (object,)
        if isinstance(value, list) and all(_is(item, element) for item in value):
            return [float(item) for item in value] if element is float else value
        example = _LIST_EXAMPLES.get(element, "[...]")
        if isinstance(value, str) and element is str:
            example = f"[{value}]"
        raise ConfigError(f"{name} must be a list of {_PLURALS.get(element, 'values')}{none}, "
                          f"got {_got(value)}; with papermill pass a YAML list: "
                          f"-y '{name}: {example}'")
    if inner not in _SCALARS:
        return value  # an annotation this check does not know: left to the chapter
    if _is(value, inner):
        return float(value) if inner is float else value
    raise ConfigError(f"{name} must be {_SCALARS[inner]}{none}, got {_got(value)}; with "
                      f"papermill pass {_scalar_form(name, value, inner)}")


def check_parameters(namespace: dict, annotations: dict) -> None:
    """Check every annotated parameter in ``namespace`` (a chapter's ``globals()``) against its
    annotation (``int``, ``float``, ``bool``, ``str``, ``list[...]``, ``Optional[...]``); ints
    given for floats become floats in place. The first wrong one raises ConfigError."""
    for name, kind in annotations.items():
        if name in namespace:
            namespace[name] = check_parameter(name, namespace[name], kind)
