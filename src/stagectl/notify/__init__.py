"""Notifications (Telegram, webhook): retried, time-limited, never raising into the caller."""

from __future__ import annotations

from stagectl.notify._http import NotifyResult

__all__ = ["NotifyResult"]
