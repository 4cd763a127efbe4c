"""Plan items: one server, its ``Action`` and its result; the ``Check``
an action returns; the ``Context`` actions work in.
"""

import dataclasses
import logging

from osc_nodeops import errors
from osc_nodeops.ops import runtime as runtime_mod
from osc_nodeops.ops.cloud import calls
from osc_nodeops.ops.cloud import nova

LOG = logging.getLogger(__name__)

# Results
PLANNED = 'planned'
SKIPPED = 'skipped'
FAILED = 'failed'
TIMEOUT = 'timeout'
NOT_STARTED = 'not-started'
INTERRUPTED = 'interrupted'
# A move a rerun found done by the run that was stopped (its intent marker
# and the finished migration say so): done, not by this run.
MOVED_EARLIER = 'moved-earlier'

# Check states
PENDING = 'pending'
COMPLETE = 'complete'
CALL = 'call'
FATAL = 'fatal'
# (FAILED is shared with results)

# Item states (executor bookkeeping)
QUEUED = 'queued'
ISSUING = 'issuing'
RUNNING = 'running'
UNSURE = 'unsure'
GRACE = 'grace'
FINISHED = 'finished'

# Source/Dest Compute as in ``openstack server migration list``.
ROW_COLUMNS = ('ID', 'Name', 'Project', 'Status Before', 'Method',
               'Source Compute', 'Dest Compute', 'Result', 'Seconds',
               'Message')


@dataclasses.dataclass
class Check(object):
    state: str
    message: str = ''
    call: object = None
    destination: str | None = None


class PlanItem(object):
    """One server, its planned method and (after execution) its result."""

    def __init__(self, server, action=None, reason='', source=None,
                 adopt=False, migration_id=None, success_if_skipped=False):
        self.server = server
        self.action = action
        self.reason = reason
        self.source = source if source is not None else getattr(
            server, 'compute_host', None)
        self.adopt = adopt
        self.migration_id = migration_id
        # A skip that is not a failure (e.g. already home).
        self.success_if_skipped = success_if_skipped
        self.status_before = getattr(server, 'status', None)
        self.state = QUEUED
        self.attempts = 0
        self.transient = 0
        self.known_migrations = set()
        self.issued_at = None
        self.started_at = None
        self.deadline = None
        # Its own --timeout (the drain's --timeout-per-gib), else None:
        # the run's (``ladder.Ladder.timeout_of``).
        self.timeout = None
        self.not_before = 0.0
        self.future = None
        self.future_kind = None
        self.future_since = None
        self.data = {}
        self.result = None
        self.message = ''
        self.destination = None
        self.seconds = None
        self.last_migration = None
        # The drain's pre-flight (ops/preflight.py): every Reason found,
        # whether the move fits the cloud and where it would likely land.
        self.blockers = []
        self.fits = None
        self.landing = None
        self.capacity = None
        # Hosts a retry may go to, most likely first (the pre-flight's
        # landing, then the other candidates); empty: the scheduler picks.
        self.candidates = ()
        # The escalation as planned (ladder, retries, fallback) and as it
        # happened (one line per step: timeouts, retries, fallback).
        self.ladder = []
        self.steps = []
        # The owner's maintenance policy (ops/drain.py owner_policy) and
        # what the drain made of it.
        self.policy = None
        self.policy_note = ''
        # Whose problem a row shows: 'pre-existing', 'move' or 'none'.
        self.blame = None
        self.blame_detail = ''

    def step(self, text):
        """Record one step of the escalation (the row's message lists
        them)."""
        self.steps.append(text)

    def begin_attempt(self, now, timeout, snap):
        """One more attempt starts at ``now`` (its issue call is made
        next); the migrations known before it are remembered: its own is
        the one that is not among them."""
        self.attempts += 1
        self.data.pop('start_faults', None)
        if self.started_at is None:
            self.started_at = now
        # An issue call that never returns times out like a move.
        self.deadline = now + timeout
        if snap is not None:
            self.known_migrations = {m.id for m in snap.migrations(self.id)}
        self.state = ISSUING

    def resume(self, now, timeout):
        """A run picks up, at ``now``, the operation a run before left in
        flight (``adopt``)."""
        self.state = RUNNING
        self.attempts = 1
        self.started_at = self.issued_at = now
        self.deadline = now + timeout

    def put_off(self, now, exc):
        """A transient fault in what the start looks at (a poll's server
        list, made when first needed) puts the start off to a fresh poll,
        with the backoff and tries of a call: the number of this retry, or
        0 (not transient, or out of tries: the start fails)."""
        n = self.data.get('start_faults', 0) + 1
        if not calls.is_transient(exc) or n >= calls.ATTEMPTS:
            return 0
        self.data['start_faults'] = n
        self.data['requeued_at'] = now
        self.not_before = now + calls.EXPONENTIAL(n - 1)
        return n

    def requeue(self, now, retry_delay, target_host=None):
        """Back to the queue for another attempt, ``retry_delay`` seconds
        from ``now``: the host its last move went to counts as failed,
        the next goes to ``another_host``."""
        m = self.last_migration
        if m is not None and m.dest_compute and \
                m.dest_compute != self.source:
            failed = self.data.setdefault('failed_hosts', [])
            if m.dest_compute not in failed:
                failed.append(m.dest_compute)
        self.state = QUEUED
        self.migration_id = None
        self.last_migration = None
        for key in ('call_pending', 'done_seen', 'ladder_step', 'aborted',
                    'ladder_asked', 'confirm_sent', 'queue_ahead',
                    'left_queue', 'clock_from', 'progress_low', 'stalled',
                    'dest_host'):
            self.data.pop(key, None)
        self.data['requeued_at'] = now
        self.not_before = now + retry_delay
        self.data['retry_host'] = another_host(self, target_host)

    def finish(self, result, message, now):
        """The item ends at ``now`` with ``result`` (and ``message``, when
        one is given); returns the line its event says."""
        self.state = FINISHED
        self.result = result
        if message:
            self.message = message
        if self.started_at is not None:
            self.seconds = now - self.started_at
        if self.action is not None and result == self.action.success:
            return ('%s -> %s in %.1fs' % (self.source, self.destination,
                                           self.seconds or 0)
                    + ('; ' + self.message if self.message else ''))
        return self.message

    @property
    def id(self):
        return self.server.id

    @property
    def method(self):
        return self.action.method_name(self) if self.action else 'skip'

    @property
    def label(self):
        name = getattr(self.server, 'name', None)
        return '%s (%s)' % (name, self.id) if name else str(self.id)

    @property
    def ok(self):
        if self.action is None:
            return self.success_if_skipped
        return self.result in (self.action.success, MOVED_EARLIER)

    def row(self):
        return (self.id, getattr(self.server, 'name', None),
                getattr(self.server, 'project_id', None),
                self.status_before, self.method, self.source,
                self.destination, self.result,
                None if self.seconds is None else round(self.seconds, 1),
                self.full_message())

    def full_message(self):
        """The row's message: the escalation steps, then the outcome."""
        last = self.message or self.reason or ''
        parts = list(self.steps) + ([last] if last else [])
        if self.policy_note:
            parts.insert(0, self.policy_note)
        return '; '.join(parts)


class Context(object):
    """What actions need: the compute proxy, features, options."""

    def __init__(self, compute, host, features=None, target_host=None,
                 options=None, events=None, runtime=None):
        self.compute = compute
        self.host = host
        self.features = features or nova.Features()
        self.target_host = target_host
        self.options = options or {}
        self._events = events
        # The run's clock, sleep and Ctrl-C (``runtime.Runtime``).
        self.runtime = runtime or runtime_mod.Runtime()
        self.sleep = self.runtime.sleep
        # How a call is waited for: directly, or (while an executor runs)
        # in a thread the main thread can leave at a second Ctrl-C.
        self.bounded = lambda fn: fn()

    def emit(self, kind, message, item=None, code=None, detail=None):
        if self._events:
            try:
                self._events(runtime_mod.Event(kind, message, item,
                                               host=self.host, code=code,
                                               detail=detail))
            except Exception:  # never let printing break the run
                LOG.exception('event callback failed')

    def retried(self, exc, n, item=None):
        """Say that a transient fault ``exc`` is tried again (retry ``n``)."""
        self.emit('retry', 'transient API fault (%s), retry %d' % (
            errors.one_line(exc, style=errors.STATUS), n), item)

    def api(self, fn, *args, **kwargs):
        """One API call with transient-fault retries."""
        return self.bounded(lambda: calls.call_with_retry(
            lambda: fn(*args, **kwargs), sleep=self.sleep,
            on_retry=self.retried))


def settle(items, dry_run):
    """Give every item the executor did not touch its final result: SKIPPED
    for a skip, PLANNED for a planned action in a dry run."""
    for item in items:
        if item.result is not None:
            continue
        if item.action is None:
            item.result = SKIPPED
        elif dry_run:
            item.result = PLANNED


def another_host(item, target_host=None):
    """Where a retry goes: a candidate (``item.candidates``, the
    pre-flight's landing first) that is neither the source nor a host a
    move of this item already failed to; None lets the scheduler choose
    (no candidates known, or ``--target-host``)."""
    if target_host:
        return None
    failed = set(item.data.get('failed_hosts', ())) | {item.source}
    for host in item.candidates:
        if host and host not in failed:
            return host
    return None

