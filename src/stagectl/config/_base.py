"""The base of every config model: frozen, strict, unknown keys refused.

Strict mode keeps a quoted ``"45"`` or a ``true`` from passing as a number; a YAML
list is accepted where the model keeps an immutable tuple (``Items``).
"""

from __future__ import annotations

from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")

Items = Annotated[tuple[T, ...], Field(strict=False)]
"""A YAML list kept as a tuple; its items are still validated strictly."""

UtcTime = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]
"""A wall-clock time in UTC, ``HH:MM``."""

Symbol = Annotated[str, Field(pattern=r"^[A-Z0-9]{2,20}$")]
"""An exchange symbol id such as ``ETHUSDT``."""

Severity = Literal["LOW", "MEDIUM", "HIGH", "CRITICAL"]


class ConfigModel(BaseModel):
    """Frozen, strict, and refusing keys it does not know."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)
