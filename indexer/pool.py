"""Worker processes of the ingest stages that die with the process that started them.

A ``kill -9`` of ``cmr ingest`` gives its pool no chance to shut down: without this, the workers lived on (100-186
MB each, holding the SQLite catalog open). On Linux each worker asks the kernel for SIGKILL when its parent dies
(``prctl(PR_SET_PDEATHSIG)``); elsewhere, and as a second guard, a thread in the worker watches the parent's pid.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor

PR_SET_PDEATHSIG = 1


def _alive(parent: int, direct: bool) -> bool:
    if direct:
        return os.getppid() == parent  # a dead parent's children are handed to another process
    try:  # started through a fork server: the best we can do is ask whether the pid still exists
        os.kill(parent, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _watch_parent(parent: int, direct: bool, every_s: float = 1.0) -> None:
    while _alive(parent, direct):
        time.sleep(every_s)
    os._exit(1)


def die_with_parent(parent: int) -> None:
    """Pool initializer: end this worker when ``parent`` (the pid that made the pool) ends."""
    direct = os.getppid() == parent
    if direct and sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            pass
        if os.getppid() != parent:  # the parent died before the request took effect
            os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent, direct), daemon=True, name="watch-parent").start()


def process_pool(workers: int) -> ProcessPoolExecutor:
    """A process pool whose workers die with this process. Create it in the main thread: the kernel's
    parent-death signal fires when the creating thread ends."""
    return ProcessPoolExecutor(max_workers=workers, initializer=die_with_parent, initargs=(os.getpid(),))
