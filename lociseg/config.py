"""Typed configuration dataclasses that round-trip to YAML.

Every configuration in lociseg is a (nested) dataclass deriving from
:class:`Config`. ``to_dict``/``from_dict`` convert recursively, check the
field types that matter (unknown keys are an error, so a typo never passes
silently) and YAML files are written beside every checkpoint so that a model
file alone reproduces its predictions.
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from pathlib import Path
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from .errors import ConfigError

T = TypeVar("T", bound="Config")


def _convert(tp: Any, value: Any, where: str) -> Any:
    """Convert a plain YAML value to the annotated type ``tp``."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        return _convert_union(tp, value, where)
    if origin is typing.Literal:
        if value not in get_args(tp):
            raise ConfigError(f"{where}: {value!r} is not one of {list(get_args(tp))}")
        return value
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return _from_dict(tp, value, where)
    if origin in (list, tuple):
        return _convert_sequence(tp, value, where)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        _, vt = get_args(tp) or (Any, Any)
        return {k: _convert(vt, v, f"{where}.{k}") for k, v in value.items()}
    return _convert_scalar(tp, value, where)


def _convert_union(tp: Any, value: Any, where: str) -> Any:
    """The value as the first member of the union it fits (None for an optional)."""
    args = get_args(tp)
    if value is None and type(None) in args:
        return None
    for arg in args:
        if arg is type(None):
            continue
        try:
            return _convert(arg, value, where)
        except (ConfigError, TypeError, ValueError):
            continue
    raise ConfigError(f"{where}: {value!r} does not fit {tp}")


def _convert_sequence(tp: Any, value: Any, where: str) -> Any:
    """A list, a fixed-length tuple or a variable-length tuple, item by item."""
    origin = get_origin(tp)
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{where}: expected a list, got {value!r}")
    args = get_args(tp)
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(args) != len(value):
            raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
        return tuple(_convert(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    item = args[0] if args else Any
    out = [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    return tuple(out) if origin is tuple else out


def _convert_scalar(tp: Any, value: Any, where: str) -> Any:
    """A float (finite; ints accepted), an int, a bool or a str, strictly (no bool for a number); others as given."""
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is str and not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value


def _from_dict(cls: type, data: dict, where: str) -> Any:
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where or cls.__name__}: unknown option(s) {unknown}; valid: {sorted(names)}")
    kwargs = {k: _convert(hints[k], v, f"{where}.{k}" if where else k) for k, v in data.items()}
    for f in dataclasses.fields(cls):
        if f.name in kwargs and "limits" in f.metadata:
            _check_limits(kwargs[f.name], f.metadata["limits"], f"{where}.{f.name}" if where else f.name)
    obj = cls(**kwargs)
    if isinstance(obj, Config):
        obj.validate(where)
    return obj


_LIMIT_TEXT = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}


def _check_limits(value: Any, limits: dict[str, Any], where: str) -> None:
    """Raise ConfigError naming ``where`` and the allowed range when ``value`` breaks ``limits``."""
    if value is None:
        return
    ok = all(
        {"gt": value > lim, "ge": value >= lim, "lt": value < lim, "le": value <= lim}[key]
        for key, lim in limits.items()
        if key in _LIMIT_TEXT
    )
    step = limits.get("multiple_of")
    ok = ok and (step is None or value % step == 0)
    if not ok:
        rule = " and ".join(f"{_LIMIT_TEXT[k]} {lim}" for k, lim in limits.items() if k in _LIMIT_TEXT)
        if step is not None:
            rule += f"{' and ' if rule else ''}a multiple of {step}"
        raise ConfigError(f"{where} must be {rule}, got {value!r}")


def bounded(default: Any, **limits: Any) -> Any:
    """A dataclass field with a default and a checked range, e.g. ``lr: float = bounded(2e-3, gt=0)``.

    ``limits`` are ``gt``, ``ge``, ``lt``, ``le`` and ``multiple_of``; they are
    checked whenever a value comes from YAML, a mapping or an override
    (:meth:`Config.from_dict`), and a violation is a one-line ConfigError
    naming the dotted option and the allowed range.
    """
    unknown = set(limits) - {*_LIMIT_TEXT, "multiple_of"}
    if unknown:
        raise TypeError(f"unknown limit(s) {sorted(unknown)}")
    return dataclasses.field(default=default, metadata={"limits": limits})


def parse_overrides(items: typing.Iterable[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings (``--set optim.steps=500``) as :meth:`Config.override`'s dict; values are YAML.

    Raises
    ------
    ConfigError
        An item without ``=`` or a key, or a value that is not valid YAML.
    """
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or exc.__class__.__name__
            raise ConfigError(f"--set {key.strip()}: {value!r} is not a valid YAML value ({problem})") from None
    return out


def to_dict(obj: Any) -> Any:
    """Recursively convert a dataclass (or containers of them) to plain Python."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


@dataclasses.dataclass
class Config:
    """Base class of all configuration dataclasses."""

    def to_dict(self) -> dict:
        """Return the configuration as nested plain dictionaries."""
        return to_dict(self)

    def validate(self, where: str = "") -> None:
        """Check relations between fields (ranges of single fields are :func:`bounded`); raise ConfigError.

        Called by :meth:`from_dict` after the fields are set; ``where`` is the
        dotted prefix of this section (``"data.augment"``) for the message.
        Subclasses override it; the base checks nothing.
        """

    @classmethod
    def from_dict(cls: type[T], data: dict | None) -> T:
        """Build the configuration from nested dictionaries, checking keys and types."""
        return _from_dict(cls, dict(data or {}), "")

    def to_yaml(self, path: str | os.PathLike | None = None) -> str:
        """Serialise to YAML; also write it to ``path`` when given."""
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_yaml(cls: type[T], path_or_text: str | os.PathLike) -> T:
        """Load from a YAML file path or a YAML string.

        A path object must name an existing file; a string is a file when one
        of that name exists, else YAML text (a bare word that is neither is
        reported as a missing file, not parsed as a scalar).
        """
        text = path_or_text if isinstance(path_or_text, str) else None
        p = None if text is not None and ("\n" in text or not text.strip()) else Path(path_or_text)
        if p is not None and p.is_dir():
            raise ConfigError("is a folder, not a YAML file", path=p)
        if p is not None and p.is_file():
            try:
                data = yaml.safe_load(p.read_text())
            except yaml.YAMLError as exc:
                raise ConfigError(f"not valid YAML ({exc.__class__.__name__})", path=p) from None
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"cannot read the file ({exc.__class__.__name__})", path=p) from None
        elif text is None:
            raise ConfigError("no such file", path=p)
        else:
            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise ConfigError(f"not valid YAML ({exc.__class__.__name__})") from None
            if isinstance(data, str):
                raise ConfigError("no such file", path=text)
        if data is not None and not isinstance(data, dict):
            raise ConfigError("the configuration must be a YAML mapping", path=p)
        return cls.from_dict(data)

    def replace(self: T, **changes: Any) -> T:
        """Return a copy with some top-level fields changed."""
        return dataclasses.replace(self, **changes)

    def override(self: T, dotted: dict[str, Any]) -> T:
        """Return a copy with ``{"train.lr": 0.01, ...}`` style overrides applied.

        Overrides reach every field, also ones a subclass's :meth:`to_dict` leaves out.
        """
        data = to_dict(self)
        for key, value in dotted.items():
            node = data
            parts = key.split(".")
            for part in parts[:-1]:
                if not isinstance(node.get(part), dict):
                    raise ConfigError(f"unknown option {key!r}")
                node = node[part]
            if parts[-1] not in node:
                raise ConfigError(f"unknown option {key!r}")
            node[parts[-1]] = value
        return type(self).from_dict(data)
