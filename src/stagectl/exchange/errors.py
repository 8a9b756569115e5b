"""The exchange layer's outcomes: every ccxt failure becomes one of these (exit 3 or 2).

Messages are one line and never contain credentials: they name the operation, the
exchange and what to do.
"""

from __future__ import annotations

from stagectl.errors import ExternalError, InputError


class ExchangeError(ExternalError):
    """The exchange refused or failed an operation. ``retryable`` says whether a retry
    of the same request could succeed (used by the retry loop, then exhausted)."""

    retryable = False


class ExchangeUnavailable(ExchangeError):
    """Network error, timeout, rate limit or maintenance, after the retries ran out."""

    retryable = True


class ExchangeAuthError(ExchangeError):
    """The API key or its signature was refused, or the key lacks a permission."""


class OrderRejected(ExchangeError):
    """The order itself was refused: invalid, insufficient margin, unknown symbol."""


class OrderNotFound(ExchangeError):
    """No order with that id or client order id exists on the exchange."""


class OrderStateUnknown(ExchangeError):
    """A create-order attempt may have reached the exchange and could not be confirmed."""


class CredentialsError(InputError):
    """Exchange credentials are missing or their key file is unsafe (exit 2)."""
