"""Preloaded by each worker of the local Dask cluster (``research.parallel``).

Ctrl-C at a terminal sends SIGINT to the whole foreground process group, the local
cluster's worker processes included. The command's own process handles it (cancels the
tasks, closes the cluster, exits 130); a worker that also took it would die printing a
KeyboardInterrupt traceback. So the workers ignore SIGINT, as the children of a pool
usually do; closing the cluster stops them.
"""

from __future__ import annotations

import signal
import threading
from typing import Any


def dask_setup(worker: Any) -> None:
    """Dask's preload hook, run in the worker process before it takes tasks."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
