"""Settings that describe themselves: each option of an engine is a dataclass field that carries its
default, help, choices and range, so every face (the CLI's flags, the studio's form and OpenAPI schema,
a record's keys) is made from it and none restates it.

    @dataclass
    class Settings(Checked):
        strength: float = setting(1.0, help="0 = the photo, 1 = full style", low=0, high=1)

:func:`controls` turns such a class into :class:`Control` s, the one description both faces render;
:func:`check` is the one validation of choices and ranges (``Checked.validate`` calls it), so an
out-of-range value is refused with the same words on the command line, in the studio and in Python.
"""

from __future__ import annotations

import copy
import math
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from brushwork.errors import BrushworkError


def setting(
    default: Any = MISSING,
    *,
    help: str,
    choices: Sequence | None = None,
    default_factory: Any = MISSING,
    low: float | None = None,
    high: float | None = None,
    below: float | None = None,
    name: str | None = None,
    flag: str | None = None,
    aliases: tuple[str, ...] = (),
    basic: bool = False,
    required: bool = False,
    parse: Callable[[str], Any] | None = None,
    parts: tuple[str, ...] = (),
):
    """A dataclass field with what the faces need to show and check it.

    ``low``/``high`` bound it (inclusive), ``below`` from above (exclusive); for a list, every item.
    ``name`` is the keyword and form field where it differs from the field (the record keeps the field);
    ``flag`` the CLI option where it differs from ``--name``, ``aliases`` hidden older spellings of it.
    ``basic`` puts it among the studio's first controls; ``required`` means it must be given (the field's
    default is then None); ``parse`` reads it from text where it has its own syntax (``0-63`` seeds);
    ``parts`` names the items of a list of fixed length (``("low", "high")``), typed as that many words."""
    metadata = {"help": help, "choices": tuple(choices) if choices is not None else None, "low": low, "high": high,
                "below": below, "name": name, "flag": flag, "aliases": tuple(aliases), "basic": basic,
                "required": required, "parse": parse, "parts": tuple(parts)}  # fmt: skip
    return field(default=default, default_factory=default_factory, metadata=metadata)


def help_of(config_cls, name: str) -> str:
    """The help of ``config_cls``'s field ``name``: for a subclass that changes only the default."""
    return next(f.metadata["help"] for f in fields(config_cls) if f.name == name)


_KIND_WORDS = {
    "int": "a whole number",
    "float": "a finite number",
    "str": "text",
    "bool": "true or false",
    "floats": "a list of numbers",
    "ints": "a list of whole numbers",
    "names": "a list of names",
}
_LIST_KINDS = {int: "ints", float: "floats", str: "names"}
_SCALAR_KINDS = {bool: "bool", int: "int", float: "float", str: "str"}
MAX_TEXT = 1000
MAX_ITEMS = 64


@dataclass(frozen=True)
class Control:
    """One option as every face shows it: the keyword, the CLI flag, its kind, default, help and bounds."""

    name: str  # the Python keyword and the studio's field
    field: str  # the settings' field, the record's key
    kind: str  # int | float | str | bool | floats | ints | names
    default: Any = None
    optional: bool = False  # None is a value (unset: the engine decides)
    required: bool = False
    choices: tuple = ()
    help: str = ""
    low: float | None = None
    high: float | None = None
    below: float | None = None
    basic: bool = False
    flag: str = ""
    aliases: tuple[str, ...] = ()
    parse: Callable[[str], Any] | None = None
    parts: tuple[str, ...] = ()  # a list of exactly these items (a range's two ends)

    def to_dict(self) -> dict:
        """The control as GET /api/engines shows it (the form is drawn from this)."""
        return {"name": self.name, "flag": self.flag, "kind": self.kind, "default": self.default,
                "optional": self.optional, "required": self.required, "choices": list(self.choices),
                "help": self.help, "basic": self.basic, "minimum": self.low,
                "maximum": self.high if self.high is not None else self.below}  # fmt: skip

    def from_text(self, text: str) -> Any:
        """A value typed on the command line (``3,7`` for a list)."""
        return self.coerce(text)

    def coerce(self, value: Any) -> Any:
        """The value as the engine takes it, from JSON or text, or a BrushworkError naming the option."""
        if value is None and (self.optional or self.required):
            return None
        bad = BrushworkError(f"{self.name}: expected {_KIND_WORDS[self.kind]}, got {str(value)[:60]!r}")
        if self.parse is not None and isinstance(value, str):
            return self.parse(value)
        if self.kind == "bool":
            if isinstance(value, str) and value.lower() in ("true", "false"):
                return value.lower() == "true"
            if not isinstance(value, bool):
                raise bad
            return value
        if self.kind in ("int", "float"):
            return _number(value, self.kind, bad)
        if self.kind == "str":
            if not isinstance(value, str):
                raise bad
            if len(value) > MAX_TEXT:
                raise BrushworkError(f"{self.name}: the text is {len(value)} characters; at most {MAX_TEXT}")
            return value
        if isinstance(value, str):  # "3,7" as typed on the command line
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)) or len(value) > MAX_ITEMS:
            raise bad
        if self.kind == "names":
            if not all(isinstance(v, str) and 0 < len(v) <= MAX_ITEMS for v in value):
                raise bad
            return list(value)
        return [_number(v, "int" if self.kind == "ints" else "float", bad) for v in value]


def _number(value: Any, kind: str, bad: BrushworkError) -> int | float:
    if isinstance(value, str):
        try:
            value = float(value) if kind == "float" or not value.strip().lstrip("+-").isdigit() else int(value)
        except ValueError:
            raise bad from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise bad
    if kind == "int":
        if float(value) != int(value) or abs(value) >= 2**63:
            raise bad
        return int(value)
    return float(value)


def _kind(hint: Any) -> tuple[str, bool]:
    """(kind, None allowed) of a field's type: ``int``, ``list[str] | None``, ``Sequence[float]``…"""
    optional = False
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(args) < len(typing.get_args(hint))
        hint = args[0]
    origin = typing.get_origin(hint)
    if origin is not None and (origin in (list, tuple) or issubclass(origin, Sequence)):
        return _LIST_KINDS[typing.get_args(hint)[0]], optional
    return _SCALAR_KINDS[hint], optional


def controls(settings_cls: type) -> list[Control]:
    """The one translation of a settings dataclass into controls, for the CLI and the studio alike."""
    hints = typing.get_type_hints(settings_cls)  # the fields' types, also where annotations are strings
    found = []
    for f in fields(settings_cls):
        if not f.metadata or "help" not in f.metadata:
            continue  # derived values (a GAN's classes), never an option
        meta = f.metadata
        kind, optional = _kind(hints[f.name])
        default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
        name = meta.get("name") or f.name
        found.append(Control(
            name, f.name, kind, list(default) if isinstance(default, tuple) else default,
            optional=optional or default is None, required=bool(meta.get("required")),
            choices=meta.get("choices") or (), help=meta["help"], low=meta.get("low"), high=meta.get("high"),
            below=meta.get("below"), basic=bool(meta.get("basic")),
            flag=meta.get("flag") or "--" + name.replace("_", "-"), aliases=meta.get("aliases") or (),
            parse=meta.get("parse"), parts=meta.get("parts") or (),
        ))  # fmt: skip
    return found


def _label(control: Control) -> str:
    return control.name.replace("_", " ")


def check(settings: Any) -> None:
    """Every field of ``settings`` within its choices and range: one message, whichever face asked."""
    for c in controls(type(settings)):
        value = getattr(settings, c.field)
        if value is None:
            if c.required:
                raise BrushworkError(f"{c.name} is required")
            if c.optional:
                continue
        if c.parts and len(value) != len(c.parts):
            raise BrushworkError(f"{c.name}: expected {len(c.parts)} values ({', '.join(c.parts)}), got {len(value)}")
        for item in value if isinstance(value, (list, tuple)) else [value]:
            _check_item(c, item)


def _check_item(c: Control, value: Any) -> None:
    if c.choices and value not in c.choices:
        raise BrushworkError(f"{c.name}: must be one of {', '.join(map(str, c.choices))}, not {str(value)[:60]!r}")
    if c.low is None and c.high is None and c.below is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise BrushworkError(f"{c.name}: expected {_KIND_WORDS[c.kind]}, got {str(value)[:60]!r}")
    top = c.high if c.high is not None else c.below
    too_high = (c.high is not None and value > c.high) or (c.below is not None and value >= c.below)
    if (c.low is not None and value < c.low) or too_high:
        if c.low is not None and top is not None:
            bounds = f"between {c.low:g} and {top:g}" + (f" (below {c.below:g})" if c.below is not None else "")
        elif c.low is not None:
            bounds = f"at least {c.low:g}"
        else:
            bounds = f"below {top:g}" if c.below is not None else f"at most {top:g}"
        raise BrushworkError(f"{_label(c)} must be {bounds}, not {value}")


_JSON_TYPES = {"int": {"type": "integer"}, "float": {"type": "number"}, "str": {"type": "string"},
               "bool": {"type": "boolean"}, "ints": {"type": "array", "items": {"type": "integer"}},
               "floats": {"type": "array", "items": {"type": "number"}},
               "names": {"type": "array", "items": {"type": "string"}}}  # fmt: skip


def json_schema(settings_cls: type) -> dict:
    """The settings as a JSON Schema object (the studio's OpenAPI document shows one per engine)."""
    properties = {}
    for c in controls(settings_cls):
        prop = {**copy.deepcopy(_JSON_TYPES[c.kind]), "description": c.help, "default": c.default}
        target = prop["items"] if c.kind in ("ints", "floats", "names") else prop
        if c.choices:
            target["enum"] = list(c.choices)
        if c.low is not None:
            target["minimum"] = c.low
        if c.high is not None:
            target["maximum"] = c.high
        if c.below is not None:
            target["exclusiveMaximum"] = c.below
        if c.parts:
            prop["minItems"] = prop["maxItems"] = len(c.parts)
        properties[c.name] = {"anyOf": [prop, {"type": "null"}]} if c.optional and not c.required else prop
    required = [c.name for c in controls(settings_cls) if c.required]
    return {"type": "object", "properties": properties, "additionalProperties": False,
            **({"required": required} if required else {})}  # fmt: skip


class Checked:
    """What a pipeline's ``Settings`` dataclass shares: validation, controls and building from keywords."""

    def validate(self, n_styles: int | None = None) -> None:
        """Refuse a value outside its choices or range; ``n_styles`` (the style images given) is for the
        engines whose settings must agree with it."""
        check(self)

    @classmethod
    def controls(cls) -> list[Control]:
        return controls(cls)

    @classmethod
    def from_values(cls, values: dict) -> Any:
        """Settings from keywords named as the controls are (``style_blend_weights``); unknown ones refused."""
        by_name = {c.name: c.field for c in controls(cls)}
        unknown = sorted(set(values) - set(by_name))
        if unknown:
            raise BrushworkError(f"unknown setting {unknown[0]!r}; known: {', '.join(sorted(by_name))}")
        return cls(**{by_name[k]: v for k, v in values.items()})

    def values(self) -> dict:
        """The settings as keywords (the inverse of :meth:`from_values`)."""
        return {c.name: getattr(self, c.field) for c in controls(type(self))}
