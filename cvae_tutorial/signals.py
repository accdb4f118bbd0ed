"""SIGTERM handled as Ctrl-C: what ``docker stop``, Slurm and Kubernetes send ends a long job
through its cleanup (temporary files removed, locks released, the last checkpoint whole)
instead of killing it mid-write."""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM; raised where it was, so ``finally`` blocks run."""


def _raise_terminated(signum, frame):
    raise Terminated("terminated by SIGTERM")


@contextmanager
def sigterm_as_interrupt():
    """Within the block SIGTERM raises :class:`Terminated`. Only where Python may set handlers
    (the main thread) and where no one else handles SIGTERM already."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
