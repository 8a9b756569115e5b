"""Notifications (Telegram, webhook, apprise's channels): retried, time-limited, never
raising into the caller, never revealing a secret."""

from __future__ import annotations

from stagectl.notify._http import NotifyResult
from stagectl.notify.dispatch import Alert, Delivery

__all__ = ["Alert", "Delivery", "NotifyResult"]
