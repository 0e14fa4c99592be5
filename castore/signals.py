"""Wait in the main thread for a stop signal, whichever thread the kernel hands it to.

A process-directed signal goes to any thread that does not block it. Python runs its handlers
in the main thread only, and only when that thread runs Python code: a main thread asleep in
`threading.Event.wait()` sleeps on when the signal lands on one of the server's threads, and
the signal is lost (issue 14, defect 10: the daemon ignored SIGTERM). A handler that sets an
Event can also deadlock: a second signal while the main thread holds the Event's lock.

So the handlers do nothing, and the C-level handler's wakeup file descriptor
(`signal.set_wakeup_fd`), written by whichever thread takes the signal, wakes the main thread
in `select`, which reads which signal it was.
"""

from __future__ import annotations

import contextlib
import select
import signal
import socket
from typing import Iterator


class SignalWaiter:
    def __init__(self, wakeup: socket.socket, signals: frozenset[int]) -> None:
        self._wakeup = wakeup
        self._signals = signals

    def wait(self) -> signal.Signals:
        """Block until one of the signals arrives; return it."""
        while True:
            select.select([self._wakeup], [], [])
            try:
                received = self._wakeup.recv(64)
            except BlockingIOError:
                continue
            for number in received:
                if number in self._signals:
                    return signal.Signals(number)


@contextlib.contextmanager
def catching(*signals: signal.Signals) -> Iterator[SignalWaiter]:
    """Catch `signals` for the duration (call from the main thread); the waiter says when one came."""
    wakeup, notify = socket.socketpair()
    wakeup.setblocking(False)
    notify.setblocking(False)
    previous_fd = signal.set_wakeup_fd(notify.fileno(), warn_on_full_buffer=False)
    previous = {sig: signal.signal(sig, _ignore) for sig in signals}
    try:
        yield SignalWaiter(wakeup, frozenset(int(s) for s in signals))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        signal.set_wakeup_fd(previous_fd)
        wakeup.close()
        notify.close()


def _ignore(signum: int, frame: object) -> None:
    """Python-level handler: nothing to do, the wakeup descriptor carries the signal."""
