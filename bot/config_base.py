"""What every section of ``app.yaml`` shares: the error type, the section base, checked value types.

Kept apart from :mod:`bot.config` so the section modules (:mod:`bot.config_chat`,
:mod:`bot.config_oncall`) can use them without importing the loader that imports them.
"""

from __future__ import annotations

from types import NoneType, UnionType
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names each key path and what is wrong."""


class Section(BaseModel):
    """A section of app.yaml: unknown keys are errors (a typo must not be silently ignored), and so
    is ``true``/``false`` where a number is expected (pydantic would read ``port: true`` as port 1)."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, bool) and info.field_name and _wants_number(cls.model_fields[info.field_name].annotation):
            raise ValueError(f"expected a number, not {str(value).lower()}")
        return value


def _wants_number(annotation: Any) -> bool:
    """True for ``int``, ``float`` and their optional forms (``int | None``), not when ``bool`` is allowed."""
    if get_origin(annotation) in (Union, UnionType):
        options = set(get_args(annotation)) - {NoneType}
    else:
        options = {annotation}
    return bool(options) and options <= {int, float}
