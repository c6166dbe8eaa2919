"""Small value classes without :mod:`dataclasses` or :mod:`collections` (which pull in
``inspect``/``operator`` and cost ~2-7 ms per CLI run).

Two shapes, one module:

- :class:`Record` / :class:`FrozenRecord`: a subclass lists its fields in ``__slots__`` and
  writes its own ``__init__``; Record adds ``repr``, ``==`` and :meth:`Record._replace`;
  FrozenRecord refuses attribute assignment after ``__init__`` (which sets fields with
  :meth:`FrozenRecord._set`) and hashes by value (kilobox.build).
- :func:`record_type`: a :func:`collections.namedtuple` look-alike, for values that are
  tuples (hashable cache keys on the warm ``kilobox run`` path).
"""

from __future__ import annotations

import sys
from _operator import itemgetter  # builtin (operator.py and collections cost ~2 ms to import)


class Record:
    """Value semantics from ``__slots__``: repr, equality, ``_replace``."""

    __slots__ = ()
    __hash__ = None  # type: ignore[assignment]  # mutable: unhashable, as a dataclass

    def _fields(self) -> tuple[str, ...]:
        return type(self).__slots__  # type: ignore[return-value]

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._fields())
        return f"{type(self).__name__}({args})"

    def _key(self) -> tuple[object, ...]:
        """What equality (and a frozen record's hash) compares: every field, unless overridden."""
        return tuple(getattr(self, k) for k in self._fields())

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._key() == other._key()  # type: ignore[attr-defined]

    def _replace(self, **changes: object) -> "Record":
        """A copy with *changes* (unknown names are a :class:`TypeError`, as ``dataclasses.replace``)."""
        fields = self._fields()
        unknown = set(changes) - set(fields)
        if unknown:
            raise TypeError(f"{type(self).__name__} has no field(s) {', '.join(sorted(unknown))}")
        new = object.__new__(type(self))
        for k in fields:
            object.__setattr__(new, k, changes[k] if k in changes else getattr(self, k))
        return new


class FrozenRecord(Record):
    """A :class:`Record` whose fields cannot be reassigned; hashable when its fields are."""

    __slots__ = ()

    def _set(self, **values: object) -> None:
        for k, v in values.items():
            object.__setattr__(self, k, v)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r} of {type(self).__name__}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r} of {type(self).__name__}")

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(self._key())

    def __reduce__(self) -> tuple[object, ...]:
        """copy and pickle rebuild through :func:`_rebuild` (the default would assign fields)."""
        return (_rebuild, (type(self), tuple(getattr(self, k) for k in self._fields())))


def _rebuild(cls: type[FrozenRecord], values: tuple[object, ...]) -> FrozenRecord:
    new = object.__new__(cls)
    for k, v in zip(cls.__slots__, values):
        object.__setattr__(new, k, v)
    return new


def record_type(typename: str, field_names: str | tuple[str, ...], defaults: tuple[object, ...] = ()) -> type:
    """:func:`collections.namedtuple`, the parts kilobox.run uses (positional/keyword construction,
    defaults, attribute access, ``_fields``, ``_asdict``, ``_replace``, repr, equality, pickling) —
    without importing :mod:`collections` (the warm ``kilobox run`` path has no other use for it)."""
    fields = tuple(field_names.split() if isinstance(field_names, str) else field_names)
    index = {f: i for i, f in enumerate(fields)}
    first_default = len(fields) - len(defaults)
    missing = object()

    def __new__(cls, *args, **kwargs):  # noqa: ANN001, ANN202, N807
        if len(args) > len(fields):
            raise TypeError(f"{typename}() takes {len(fields)} arguments, {len(args)} given")
        values = list(args) + [missing] * (len(fields) - len(args))
        for k, v in kwargs.items():
            i = index.get(k)
            if i is None:
                raise TypeError(f"{typename}() got an unexpected keyword argument {k!r}")
            if i < len(args):
                raise TypeError(f"{typename}() got multiple values for argument {k!r}")
            values[i] = v
        for i in range(len(args), len(fields)):
            if values[i] is missing:
                if i < first_default:
                    raise TypeError(f"{typename}() missing argument {fields[i]!r}")
                values[i] = defaults[i - first_default]
        return tuple.__new__(cls, values)

    def __repr__(self) -> str:  # noqa: N807
        return f"{type(self).__name__}({', '.join(f'{f}={v!r}' for f, v in zip(fields, self))})"

    def _asdict(self) -> dict[str, object]:
        return dict(zip(fields, self))

    def _replace(self, **kwargs: object) -> object:
        return type(self)(**{**dict(zip(fields, self)), **kwargs})

    def __getnewargs__(self) -> tuple[object, ...]:  # noqa: N807
        return tuple(self)

    ns: dict[str, object] = {
        "__slots__": (), "__doc__": f"{typename}({', '.join(fields)})", "__new__": __new__,
        "__repr__": __repr__, "__getnewargs__": __getnewargs__, "_asdict": _asdict, "_replace": _replace,
        "_fields": fields, "_field_defaults": dict(zip(fields[first_default:], defaults)),
        "__module__": sys._getframe(1).f_globals.get("__name__", __name__),
    }
    for i, f in enumerate(fields):
        ns[f] = property(itemgetter(i), doc=f"field {i}: {f}")
    return type(typename, (tuple,), ns)
