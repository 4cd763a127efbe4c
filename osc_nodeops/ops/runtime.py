"""What a run shares with its surroundings: the ``Runtime`` it runs in
(clock, sleep, SIGINT: the one test seam), the ``Event`` every runbook
reports through, ``Abandoned`` (a second Ctrl-C) and the ``Report`` base
every runbook's report derives from."""

import dataclasses
import time
import typing

from osc_nodeops import errors
from osc_nodeops import timeutil


class Subject(typing.Protocol):
    """What an event is about (an ``engine.PlanItem``): named by its
    ``label``."""

    @property
    def label(self) -> str: ...


@dataclasses.dataclass(frozen=True)
class Runtime(object):
    """What a run takes from the process it runs in; ``Runtime()`` is the
    real thing.  The one way a test changes time or signals: every entry
    point takes ``runtime=`` (no module globals, no ``sleep=``).

    ``clock``: monotonic seconds (the executor's deadlines, the audit's
    settling); ``now``: the UTC wall clock (the lease's expiry times);
    ``sleep``: a pause between retries or looks; ``wait``: how
    the executor's main loop waits ``seconds`` for a change (None: on the
    executor's own wake event, so that a finished call or an interrupt
    wakes it at once); ``handle_sigint``: the executor installs its
    Ctrl-C handler (only in the main thread).
    """

    clock: typing.Callable[[], float] = time.monotonic
    now: typing.Callable[[], typing.Any] = timeutil.utcnow
    sleep: typing.Callable[[float], typing.Any] = time.sleep
    wait: typing.Callable[[float], typing.Any] | None = None
    handle_sigint: bool = True


@dataclasses.dataclass
class Event(object):
    kind: str
    message: str
    item: Subject | None = None
    host: str | None = None  # the host the run works on (for --events)
    step: str | None = None  # a step of compute node maintain
    # What a note is (a pre-flight reason's code: ``local-disk``): the
    # people's stream aggregates the notes of one code (``ops.events``).
    code: str | None = None
    # More than people need to read by default (which counts an audit
    # used, microversions): ``-v`` and the ``--events`` file show it.
    detail: str | None = None

    def __str__(self):
        if self.item is not None:
            return '%s %s: %s' % (self.item.label, self.kind, self.message)
        if self.step:
            return '%s %s %s: %s' % (self.host or '-', self.step, self.kind,
                                     self.message)
        return '%s: %s' % (self.kind, self.message)


class Abandoned(BaseException):
    """A second interrupt while the main thread waited for an API call.

    A BaseException, so that no action's ``except Exception`` takes it for
    a failure of its own: it ends ``Executor.run`` at once.
    """


class Report(object):
    """The base of every runbook's report.

    A report says what was done: ``rows`` (the table the command prints,
    a field or property of each report), ``ok`` (everything was done) and
    ``interrupted`` (a signal stopped the run): each a property of the
    report or a dataclass field WITH a default (a field without one would
    leave the read-only property here in place).  ``exit_status`` is
    computed from them here, once, for every command: 130 when interrupted
    (the rows still say what is known), 0 when ok, else 1.
    """

    @property
    def ok(self) -> bool:
        """Everything was done (a field or property of each report)."""
        return True

    @property
    def interrupted(self) -> bool:
        """A signal stopped the run."""
        return False

    @property
    def exit_status(self):
        if self.interrupted:
            return errors.EXIT_INTERRUPTED
        return errors.EXIT_OK if self.ok else errors.EXIT_INCOMPLETE
