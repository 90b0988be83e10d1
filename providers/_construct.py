"""OpenAI SDK models built without validation, for values the gateway itself made.

A streamed chunk is three nested models (``ChatCompletionChunk`` > ``Choice`` > ``ChoiceDelta``);
validating them costs ~13 µs per chunk, more than the provider SDK spends on the event, and the
OpenAI SDK's own ``model_construct`` (its lax ``construct``) is slower still. :func:`construct`
does what pydantic's ``model_construct`` does for a model without private attributes (every
field set, in the model's field order, defaults filled in, ``model_fields_set`` the given
ones) in a few dict operations: the result is equal to, and dumps exactly like, the validated
model. Only for values whose types are already right (``tests/providers/test_construct.py``).
"""

from __future__ import annotations

from typing import Any, TypeVar

import pydantic

__all__ = ["construct"]

_M = TypeVar("_M", bound=pydantic.BaseModel)

_new = object.__new__
_set = object.__setattr__
#: Per model class: every field's default, in field order.
_DEFAULTS: dict[type[pydantic.BaseModel], dict[str, Any]] = {}


def _defaults(cls: type[pydantic.BaseModel]) -> dict[str, Any]:
    if cls.__private_attributes__ or cls.model_config.get("extra") != "allow":
        raise TypeError(f"{cls.__name__}: construct() is for OpenAI's extra='allow' models")
    defaults = {
        name: field.get_default(call_default_factory=True)
        for name, field in cls.model_fields.items()
    }
    _DEFAULTS[cls] = defaults
    return defaults


def construct(cls: type[_M], **values: Any) -> _M:
    """``cls`` with ``values`` (field names, already of the right types), not validated."""
    defaults = _DEFAULTS.get(cls) or _defaults(cls)
    obj = _new(cls)
    _set(obj, "__dict__", {**defaults, **values})
    _set(obj, "__pydantic_fields_set__", set(values))
    _set(obj, "__pydantic_extra__", {})
    _set(obj, "__pydantic_private__", None)
    return obj
