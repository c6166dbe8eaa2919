"""Small value classes without :mod:`dataclasses` (which pulls in ``inspect``, ~7 ms per CLI run).

A subclass lists its fields in ``__slots__`` and writes its own ``__init__``; :class:`Record`
adds ``repr``, ``==`` and :meth:`Record._replace`; :class:`FrozenRecord` refuses attribute
assignment after ``__init__`` (which sets fields with :meth:`FrozenRecord._set`) and hashes by value.
"""

from __future__ import annotations


class Record:
    """Value semantics from ``__slots__``: repr, equality, ``_replace``."""

    __slots__ = ()
    __hash__ = None  # type: ignore[assignment]  # mutable: unhashable, as a dataclass

    def _fields(self) -> tuple[str, ...]:
        return type(self).__slots__  # type: ignore[return-value]

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._fields())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, k) == getattr(other, k) for k in self._fields())

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
        raise AttributeError(f"cannot assign to field {name!r} of frozen {type(self).__name__}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r} of frozen {type(self).__name__}")

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(getattr(self, k) for k in self._fields()))

    def __reduce__(self) -> tuple[object, ...]:
        """copy and pickle rebuild through :func:`_rebuild` (the default would assign fields)."""
        return (_rebuild, (type(self), tuple(getattr(self, k) for k in self._fields())))


def _rebuild(cls: type[FrozenRecord], values: tuple[object, ...]) -> FrozenRecord:
    new = object.__new__(cls)
    for k, v in zip(cls.__slots__, values):
        object.__setattr__(new, k, v)
    return new
