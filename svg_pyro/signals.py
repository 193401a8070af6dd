"""Stopping on SIGINT and SIGTERM: finish what is in hand, save it, exit 130 / 143.

Two tools:

- :class:`StopRequest` (training): the first SIGINT or SIGTERM only records the request; the
  training loop checks it after every step, saves and raises :class:`Interrupted`. A second
  signal exits at once (``os._exit``) after calling an ``on_second`` hook, so it never runs half
  a save's clean-up: checkpoints are written to a temporary file and renamed, so the previous
  checkpoint is intact.
- :func:`raising` (``evaluate``, ``analyze``, ...): SIGINT and SIGTERM raise :class:`Interrupted`
  where the program is, as Ctrl-C raises ``KeyboardInterrupt``; the command then writes what it
  has (marked partial) or says that nothing was written.

Exit status: ``128 + signal number`` (SIGINT 130, SIGTERM 143), the shells' convention.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)
# Under torchrun the launcher forwards the signal it gets to every worker, which often got the
# same signal already (Ctrl-C reaches the whole process group): a repeat this soon after the first
# is that echo, not a second request.
ECHO_WINDOW_S = 2.0


def exit_status(signum: int) -> int:
    return 128 + int(signum)


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class Interrupted(KeyboardInterrupt):
    """A command was stopped by ``signum``; ``partial`` holds results worth writing, if any.

    A :class:`KeyboardInterrupt`, so code that lets Ctrl-C through lets SIGTERM through too.
    """

    def __init__(self, signum: int, message: str = "", partial: Any = None):
        super().__init__(message or f"stopped by {signal_name(signum)}")
        self.signum = int(signum)
        self.message = message
        self.partial = partial

    @property
    def exit_status(self) -> int:
        return exit_status(self.signum)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


class StopRequest:
    """Context manager: SIGINT/SIGTERM set :attr:`signum` instead of stopping the program.

    ``notice`` is printed (stderr) on the first signal; ``on_second`` runs before a second signal
    ends the process with ``os._exit(128 + signum)``. ``echo_window`` seconds after the first, a
    repeat is ignored (see ``ECHO_WINDOW_S``). Outside the main thread (where handlers cannot be
    installed) it does nothing and :attr:`signum` stays ``None``. Previous handlers come back on
    exit.
    """

    def __init__(
        self,
        notice: str | None = None,
        on_second: Callable[[int], None] | None = None,
        echo_window: float = 0.0,
    ):
        self.notice = notice
        self.on_second = on_second
        self.echo_window = echo_window
        self.signum: int | None = None
        self._first_at = 0.0
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is None:
            self.signum, self._first_at = signum, time.monotonic()
            if self.notice:
                print(self.notice.format(signal=signal_name(signum)), file=sys.stderr, flush=True)
            return
        if time.monotonic() - self._first_at < self.echo_window:
            return
        if self.on_second is not None:
            with contextlib.suppress(Exception):
                self.on_second(signum)
        os._exit(exit_status(self.signum))

    def __enter__(self) -> StopRequest:
        if _in_main_thread():
            for s in SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()


@contextlib.contextmanager
def raising() -> Iterator[None]:
    """SIGINT and SIGTERM raise :class:`Interrupted` inside the block (main thread only)."""
    if not _in_main_thread():
        yield
        return

    def handle(signum: int, frame: Any) -> None:
        raise Interrupted(signum)

    previous = {s: signal.signal(s, handle) for s in SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
