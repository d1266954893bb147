"""Deeply immutable dicts and lists that still are dicts and lists.

The plan's values are read by JSON, the YAML dumper and every ``isinstance(x, dict)`` check, so
they stay ``dict``/``list`` subclasses; only the methods that would change them refuse.
``copy.deepcopy`` of a frozen value gives an ordinary, mutable copy: that is how a composer
starts a new plan from an old one.
"""

from __future__ import annotations

import copy
from typing import Any


class FrozenError(TypeError):
    """Raised on any attempt to change a plan in place."""


def _refuse(self, *args, **kwargs):
    raise FrozenError("a plan is immutable: build a new one (compose) instead of changing this one")


class FrozenDict(dict):
    __slots__ = ()
    __setitem__ = __delitem__ = __ior__ = _refuse
    clear = pop = popitem = setdefault = update = _refuse

    def __deepcopy__(self, memo):
        return {copy.deepcopy(k, memo): copy.deepcopy(v, memo) for k, v in self.items()}

    def __copy__(self):
        return dict(self)

    def __reduce__(self):
        return (dict, (dict(self),))


class FrozenList(list):
    __slots__ = ()
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse
    append = clear = extend = insert = pop = remove = reverse = sort = _refuse

    def __deepcopy__(self, memo):
        return [copy.deepcopy(v, memo) for v in self]

    def __copy__(self):
        return list(self)

    def __reduce__(self):
        return (list, (list(self),))


def freeze(value: Any) -> Any:
    """A frozen deep copy of plain data; frozen parts are shared. Tuples (records) are already
    immutable and are kept as they are."""
    if isinstance(value, (FrozenDict, FrozenList)):
        return value
    if isinstance(value, dict):
        return FrozenDict((k, freeze(v)) for k, v in value.items())
    if isinstance(value, list):
        return FrozenList(freeze(v) for v in value)
    return value


def immutable_record(cls):
    """Make a NamedTuple class freeze every dict and list it is given, and give it ``replace``.

    ``_replace`` is routed through the constructor as well, so no copy escapes the freezing.
    """
    tuple_new = cls.__new__

    def __new__(klass, *args, **kwargs):
        return tuple_new(klass, *map(freeze, args), **{k: freeze(v) for k, v in kwargs.items()})

    def replace(self, **changes):
        return type(self)(**{**self._asdict(), **changes})

    cls.__new__ = staticmethod(__new__)
    cls.replace = cls._replace = replace
    return cls


def thaw(value: Any) -> Any:
    """A mutable deep copy."""
    return copy.deepcopy(value)
