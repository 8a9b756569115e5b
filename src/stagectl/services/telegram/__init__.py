"""On-call from Telegram: ``stagectl telegram serve`` and ``telegram test``."""
