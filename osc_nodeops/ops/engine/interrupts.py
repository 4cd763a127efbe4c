"""Ctrl-C during a run, and the waits for API calls a run can leave.

The first interrupt stops new operations and waits for the ones in
flight; the second (or an API call still unanswered ``grace`` seconds
after the first) leaves them running at once.  The main thread waits for
every call (``bounded``) in short ticks it can leave; the calls run in
daemon threads (``calls.Calls``) that nothing waits for at exit.
"""

import contextlib
import signal
import threading
import time
from concurrent import futures

from osc_nodeops.ops import runtime
from osc_nodeops.ops.cloud import calls

# Seconds an API call may stay unanswered after a Ctrl-C (see
# ``Interrupts.grace``).
INTERRUPT_GRACE = 5.0


class Interrupts(object):
    """The interrupt state of one executor run.

    ``stopping``: no new operation starts (an interrupt, or the executor's
    guard refused); ``abandon``: the operations in flight are left running;
    ``interrupted``: an interrupt came.  ``wake`` is set at each change so
    that the executor's main loop looks at once.
    """

    def __init__(self, emit, wake, handle_sigint=True):
        self.emit = emit
        self.wake = wake
        self.handle_sigint = handle_sigint
        self.stopping = False
        self.abandon = False
        self.interrupted = False
        # Seconds between two looks while waiting for a call.
        self.tick = 0.2
        # Real seconds a call may stay unanswered after the first
        # interrupt before the run leaves as after a second one: Ctrl-C
        # waits for the moves in flight, never for a hung call.
        self.grace = INTERRUPT_GRACE
        self._interrupted_at = None
        self.calls = calls.Calls(wake)

    def interrupt(self):
        """What SIGINT does; callable from tests or other handlers."""
        self.interrupted = True
        if not self.stopping:
            self.stopping = True
            self._interrupted_at = time.monotonic()
            self.emit('interrupt', 'no new operations will start; '
                      'waiting for the ones in flight (interrupt again '
                      'to leave them running)')
        else:
            self.abandon = True
            self.emit('interrupt', 'leaving in-flight operations '
                      'running; rerun to pick them up')
        self.wake.set()

    @contextlib.contextmanager
    def sigint(self):
        """SIGINT calls ``interrupt`` inside the block (in the main thread,
        unless ``handle_sigint`` is false); the handler before is put back
        after it."""
        old = self._install_sigint()
        try:
            yield
        finally:
            if old is not None:
                signal.signal(signal.SIGINT, old)

    def _install_sigint(self):
        if (not self.handle_sigint or threading.current_thread()
                is not threading.main_thread()):
            return None
        try:
            return signal.signal(signal.SIGINT,
                                 lambda signum, frame: self.interrupt())
        except ValueError:  # pragma: no cover
            return None

    def bounded(self, fn):
        """Call ``fn`` in a daemon thread and wait for it, but not past a
        second interrupt (then raise ``runtime.Abandoned``).  Each HTTP
        request is bounded by the API timeout; this bounds the wait for a
        Ctrl-C."""
        if threading.current_thread() is not threading.main_thread():
            return fn()
        fut = self.calls.submit(fn)
        while True:
            if self.abandon or self.leave_hung_call():
                raise runtime.Abandoned()
            try:
                return fut.result(timeout=self.tick)
            except futures.TimeoutError:
                continue

    def leave_hung_call(self):
        """After the first interrupt, a call still unanswered ``grace``
        seconds later: leave now, as after a second interrupt (the moves
        in flight go on; a rerun picks them up).  True when the run
        leaves."""
        if (self.abandon or self._interrupted_at is None
                or time.monotonic() - self._interrupted_at < self.grace):
            return self.abandon
        self.abandon = True
        self.emit('interrupt', 'an API call has not answered %gs after '
                  'the interrupt: leaving in-flight operations running; '
                  'rerun to pick them up' % self.grace)
        self.wake.set()
        return True
