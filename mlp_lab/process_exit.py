"""Leaving the process quickly once torch is loaded.

Tearing down an interpreter that imported torch (and ``torch._dynamo``, which every
``optimizer.step`` imports) takes 0.6-0.9 s on a 2-core machine: tens of thousands of
module objects, sympy's caches, freed one by one. A lecture run trains for about 1 s, so
that is most of the difference between a run and its wall clock. Nothing mlp-lab writes
depends on it: every run file is written, fsync'd and closed when the library returns.
So the console script runs the exit handlers, flushes the streams and ends the process
with ``os._exit``, skipping only the teardown.

It falls back to an ordinary exit where the teardown could matter or costs nothing:
torch never imported (``--help``, ``compare``), or another thread still running (an
ordinary exit waits for it).
"""

from __future__ import annotations

import atexit
import os
import sys
import threading


def exit_status(code: object) -> int:
    """The status ``SystemExit(code)`` ends a process with: None is 0, an int itself,
    anything else (a message, printed to stderr) 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def leave(code: object) -> None:
    """End the process with ``SystemExit(code)``'s status; skip the interpreter's teardown
    when torch is loaded and no other thread runs."""
    if "torch" not in sys.modules or threading.active_count() > 1:
        raise SystemExit(code)
    status = exit_status(code)
    atexit._run_exitfuncs()  # what an ordinary exit runs: logging.shutdown, multiprocessing's
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (mlp-lab ... | head) or a closed stream
            pass
    os._exit(status)
