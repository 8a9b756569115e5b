"""Notifications (Telegram, webhook, apprise's channels): retried, time-limited, never
raising into the caller, never revealing a secret.

The names below are loaded on first use (PEP 562), so importing a light submodule such as
``notify._secrets`` (the masking the JSON-line logs share) does not import the channels,
urllib and pydantic with it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stagectl.notify._http import NotifyResult
    from stagectl.notify.dispatch import Alert, Delivery

__all__ = ["Alert", "Delivery", "NotifyResult"]

_HOMES = {"Alert": "dispatch", "Delivery": "dispatch", "NotifyResult": "_http"}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(f"stagectl.notify.{_HOMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
