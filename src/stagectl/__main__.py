"""Run stagectl as ``python -m stagectl``."""

from stagectl.cli.main import entry

entry()
