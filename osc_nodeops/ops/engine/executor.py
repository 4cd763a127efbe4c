"""The bounded-parallel ``Executor`` of plan items: timeouts, retries,
transient faults, SIGINT."""

import collections
import logging
import signal
import threading
import time
from concurrent import futures

from osc_nodeops import errors
from osc_nodeops.ops import runtime
from osc_nodeops.ops.cloud import calls
from osc_nodeops.ops.engine import items

LOG = logging.getLogger(__name__)

# Seconds an API call may stay unanswered after a Ctrl-C (see
# ``Executor.interrupt_grace``).
INTERRUPT_GRACE = 5.0


class Executor(object):
    """Bounded-parallel runner of plan items; see the module docstring."""

    @classmethod
    def from_options(cls, ctx, poller, opts, on_timeout=None, **kwargs):
        """An executor configured from a command's options object
        (``max_parallel``, ``poll_interval``, ``timeout``, ``retries``,
        ``retry_delay`` and, unless given, ``on_timeout``)."""
        return cls(ctx, poller, max_parallel=opts.max_parallel,
                   poll_interval=opts.poll_interval, timeout=opts.timeout,
                   on_timeout=on_timeout or opts.on_timeout,
                   retries=opts.retries, retry_delay=opts.retry_delay,
                   **dict({'step_timeout': getattr(opts, 'step_timeout',
                                                   None)}, **kwargs))

    def __init__(self, ctx, poller, max_parallel=4, poll_interval=2.0,
                 timeout=600.0, on_timeout='abort', retries=1,
                 retry_delay=5.0, transient_retries=6, grace=None,
                 clock=None, wait=None, handle_sigint=True, hung_after=None,
                 step_timeout=None, guard=None):
        if max_parallel < 1:
            raise ValueError('max_parallel must be at least 1')
        self.ladder = items.parse_ladder(on_timeout)
        self.ctx = ctx
        self.poller = poller
        self.max_parallel = max_parallel
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.on_timeout = ','.join(self.ladder)
        self.retries = retries
        self.retry_delay = retry_delay
        self.transient_retries = transient_retries
        # How long each step of the ladder gets before the next one (and
        # the last one before the item is left running).
        if step_timeout is not None:
            grace = step_timeout
        self.grace = grace if grace is not None else max(60.0, timeout / 2)
        self.clock = clock or time.monotonic
        self.handle_sigint = handle_sigint
        self.stopping = False
        self.abandon = False
        self.interrupted = False
        self.snapshots = 0
        self._wake = threading.Event()
        self._wait = wait or self._wake.wait
        self._calls = calls.Calls(self._wake)
        self.bounded_tick = 0.2
        # Real seconds a call may stay unanswered after the first
        # interrupt before the run leaves as after a second one: Ctrl-C
        # waits for the moves in flight, never for a hung call.
        self.interrupt_grace = INTERRUPT_GRACE
        self._interrupted_at = None
        # Real seconds after which a call that has not returned is given up.
        self.hung_after = hung_after if hung_after is not None else timeout
        self._poll_failures = 0
        self._next_poll = 0.0
        # Called before each batch of starts (the host lease's ``check``):
        # when it raises an ``errors.NodeOpsError``, nothing more starts,
        # the moves in flight are still watched, and ``stopped_by`` says
        # why (one line).
        self.guard = guard
        self.stopped_by = None

    # -- signals
    def interrupt(self):
        """What SIGINT does; callable from tests or other handlers."""
        self.interrupted = True
        if not self.stopping:
            self.stopping = True
            self._interrupted_at = time.monotonic()
            self.ctx.emit('interrupt', 'no new operations will start; '
                          'waiting for the ones in flight (interrupt again '
                          'to leave them running)')
        else:
            self.abandon = True
            self.ctx.emit('interrupt', 'leaving in-flight operations '
                          'running; rerun to pick them up')
        self._wake.set()

    def _install_sigint(self):
        if (not self.handle_sigint or threading.current_thread()
                is not threading.main_thread()):
            return None
        try:
            return signal.signal(signal.SIGINT,
                                 lambda signum, frame: self.interrupt())
        except ValueError:  # pragma: no cover
            return None

    # -- helpers
    def bounded(self, fn):
        """Call ``fn`` in a daemon thread and wait for it, but not past a
        second interrupt (then raise ``runtime.Abandoned``).  Each HTTP
        request is bounded by the API timeout; this bounds the wait for a
        Ctrl-C."""
        if threading.current_thread() is not threading.main_thread():
            return fn()
        fut = self._calls.submit(fn)
        while True:
            if self.abandon or self._leave_hung_call():
                raise runtime.Abandoned()
            try:
                return fut.result(timeout=self.bounded_tick)
            except futures.TimeoutError:
                continue

    def _leave_hung_call(self):
        """After the first interrupt, a call still unanswered
        ``interrupt_grace`` seconds later: leave now, as after a second
        interrupt (the moves in flight go on; a rerun picks them up).
        True when the run leaves."""
        if (self.abandon or self._interrupted_at is None
                or time.monotonic() - self._interrupted_at
                < self.interrupt_grace):
            return self.abandon
        self.abandon = True
        self.ctx.emit('interrupt', 'an API call has not answered %gs after '
                      'the interrupt: leaving in-flight operations running; '
                      'rerun to pick them up' % self.interrupt_grace)
        self._wake.set()
        return True

    def _finish(self, item, result, message=''):
        now = self.clock()
        item.state = items.FINISHED
        item.result = result
        if message:
            item.message = message
        if item.started_at is not None:
            item.seconds = now - item.started_at
        detail = item.message
        if item.action is not None and result == item.action.success:
            detail = ('%s -> %s in %.1fs' % (item.source, item.destination,
                                             item.seconds or 0)
                      + ('; ' + item.message if item.message else ''))
        self.ctx.emit(result, detail or result, item)

    def _submit(self, pool, item, kind, fn):
        item.future_kind = kind
        item.future_since = time.monotonic()

        def run():
            try:
                return fn()
            finally:
                self._wake.set()
        item.future = pool.submit(run)

    def _issue_fn(self, item):
        return lambda: item.action.issue(self.ctx, item)

    def _start(self, pool, item, snap):
        try:
            stop = item.action.precheck(self.ctx, item, snap)
        except Exception as exc:
            stop = items.Check(items.FAILED, 'precheck failed: %s' %
                               calls.describe(exc))
        if stop is not None:
            if item.started_at is None:
                item.started_at = self.clock()
            self._finish(item, items.FAILED, stop.message)
            return
        now = self.clock()
        item.attempts += 1
        if item.started_at is None:
            item.started_at = now
        # An issue call that never returns times out like a move.
        item.deadline = now + self.timeout
        if snap is not None:
            item.known_migrations = {m.id for m in snap.migrations(item.id)}
        item.state = items.ISSUING
        self.ctx.emit('start', '%s (attempt %d)' % (item.method,
                                                     item.attempts), item)
        self._submit(pool, item, 'issue', self._issue_fn(item))

    def _requeue(self, item):
        m = item.last_migration
        if m is not None and m.dest_compute and \
                m.dest_compute != item.source:
            failed = item.data.setdefault('failed_hosts', [])
            if m.dest_compute not in failed:
                failed.append(m.dest_compute)
        item.state = items.QUEUED
        item.migration_id = None
        item.last_migration = None
        for key in ('call_pending', 'done_seen', 'ladder_step', 'aborted',
                    'ladder_asked', 'confirm_sent'):
            item.data.pop(key, None)
        item.data['requeued_at'] = self.clock()
        item.not_before = self.clock() + self.retry_delay
        item.data['retry_host'] = items.another_host(item,
                                                     self.ctx.target_host)

    def _retry_or_fail(self, item, message):
        if item.attempts <= self.retries and not self.stopping:
            self._requeue(item)
            item.message = message
            where = item.data.get('retry_host')
            where = ('on %s' % where) if where else (
                'the scheduler chooses' if not self.ctx.target_host else
                'on %s (--target-host)' % self.ctx.target_host)
            item.step('attempt %d: %s; retry %d of %d (%s)' % (
                item.attempts, message, item.attempts, self.retries, where))
            self.ctx.emit('retry', '%s; retrying (%d of %d), %s' % (
                message, item.attempts, self.retries, where), item)
            return True
        fallback = None
        if not self.stopping:
            try:
                fallback = item.action.fallback(self.ctx, item)
            except Exception as exc:
                LOG.debug('fallback failed', exc_info=True)
                self.ctx.emit('warning', 'fallback not possible: %s' %
                              calls.describe(exc), item)
        if fallback is not None:
            action, note = fallback
            self._requeue(item)
            item.data.pop('phase', None)
            item.step('attempt %d: %s; %s' % (item.attempts, message, note))
            self.ctx.emit('fallback', '%s; %s' % (message, note), item)
            item.action = action
            item.attempts = 0
            item.message = ''
            return True
        self._finish(item, items.FAILED, message)
        return False

    def _collect_future(self, item):
        fut = item.future
        kind = item.future_kind
        item.future = None
        item.future_kind = None
        exc = fut.exception()
        now = self.clock()
        if kind == 'issue':
            if exc is None:
                item.state = items.RUNNING
                item.issued_at = now
                item.deadline = now + self.timeout
                item.transient = 0
                self.ctx.emit('issued', item.method, item)
            elif calls.is_transient(exc):
                item.transient += 1
                item.state = items.UNSURE
                item.issued_at = now
                item.deadline = now + self.timeout
                self.ctx.emit('unsure', 'transient fault while issuing (%s); '
                              'checking whether it went through' %
                              calls.describe(exc), item)
            else:
                self._retry_or_fail(item, 'refused: %s' % calls.describe(exc))
        else:  # follow-up call or on-timeout call
            item.data.pop('call_pending', None)
            if exc is None:
                item.transient = 0
                return
            if calls.is_transient(exc):
                item.transient += 1
                self.ctx.emit('retry', '%s: transient fault (%s)' % (
                    kind, calls.describe(exc)), item)
                # progress() will ask for the call again on a later poll
                item.data.pop('call_pending', None)
                return
            item.message = '%s failed: %s' % (kind, calls.describe(exc))
            self.ctx.emit('warning', item.message, item)
            item.data.pop('call_pending', None)
            if kind in self.ladder:
                # The cloud refused this step: the next one at once.
                item.step('%s refused: %s' % (kind, calls.describe(exc)))
                item.deadline = now

    def _snapshot(self, force=False):
        now = self.clock()
        if now < self._next_poll and not force:
            return None
        try:
            snap = self.bounded(self.poller.snapshot)
            snap.load_with(self.bounded)
        except Exception as exc:
            if not calls.is_transient(exc):
                # Not transient, but losing track is worse: keep trying with
                # backoff, the timeouts bound the wait.
                LOG.debug('poll failed', exc_info=True)
            self._poll_failures += 1
            delay = min(30.0, self.poll_interval * (2 ** self._poll_failures))
            self._next_poll = now + delay
            self.ctx.emit('poll', 'listing the host failed (%s); retrying in '
                          '%.0fs' % (calls.describe(exc), delay))
            return None
        self._poll_failures = 0
        self._next_poll = now + self.poll_interval
        self.snapshots += 1
        snap.taken_at = now
        return snap

    def _settle_unsure(self, item, snap):
        """An item whose issue call hit a transient fault: adopt it if the
        snapshot shows the call went through, else queue it again.  True
        when the item is running now."""
        try:
            adopted = item.action.adopt(self.ctx, item, snap)
        except Exception as exc:
            # The lookup itself failed (the snapshot's server list timed
            # out): still unsure; the next poll looks again, the item's
            # deadline bounds the wait.
            LOG.debug('adopt failed', exc_info=True)
            if item.data.get('last') != 'unsure':
                item.data['last'] = 'unsure'
                self.ctx.emit('progress', 'could not check whether the call '
                              'went through (%s); looking again' %
                              calls.describe(exc), item)
            return False
        if adopted:
            item.state = items.RUNNING
            self.ctx.emit('adopted', 'the call went through', item)
            return True
        if item.transient > self.transient_retries:
            self._finish(item, items.FAILED, 'API kept failing while issuing')
            return False
        item.state = items.QUEUED
        item.attempts -= 1  # a transient fault is not an attempt
        item.not_before = self.clock() + min(
            30.0, self.retry_delay * item.transient)
        return False

    def _progress(self, pool, item, snap):
        if item.state == items.UNSURE and not self._settle_unsure(item, snap):
            return
        try:
            check = item.action.progress(self.ctx, item, snap)
        except Exception as exc:
            # A bug or an API fault in an action must not lose the others:
            # keep the item in flight; its timeout bounds the wait.
            LOG.debug('progress failed', exc_info=True)
            check = items.Check(items.PENDING, 'could not check progress: '
                                '%s' % calls.describe(exc))
        if check.state == items.PENDING:
            if check.message and check.message != item.data.get('last'):
                item.data['last'] = check.message
                self.ctx.emit('progress', check.message, item)
            return
        if check.state == items.CALL:
            if not item.data.get('call_pending'):
                item.data['call_pending'] = True
                self.ctx.emit('call', check.message, item)
                self._submit(pool, item, check.message or 'call', check.call)
            return
        item.data.pop('call_pending', None)
        if check.state == items.COMPLETE:
            self._complete(item, check, snap)
        elif check.state == items.FATAL:
            self._finish(item, items.FAILED, check.message)
        else:
            self._retry_or_fail(item, check.message)

    def _complete(self, item, check, snap):
        """The action says it is done: verify, then finish or retry."""
        action = item.action
        try:
            ok, message, dest = action.verify(self.ctx, item, snap)
        except Exception as exc:
            if calls.is_transient(exc):
                # The look itself failed (e.g. the server list timed out):
                # the move is not in doubt, look again on the next poll
                # rather than issue it again; the deadline bounds this.
                LOG.debug('verify failed', exc_info=True)
                self.ctx.emit('progress', 'could not verify yet (%s); '
                              'looking again' % calls.describe(exc), item)
                return
            ok, message, dest = (False, 'verification failed: %s' %
                                 calls.describe(exc), None)
        item.destination = dest or check.destination
        if not ok:
            self._retry_or_fail(item, 'verification failed: ' + message)
            return
        try:
            action.finished(self.ctx, item)
        except Exception as exc:
            message = 'done, but: %s' % calls.describe(exc)
        item.message = message
        self._finish(item, action.success, message)

    def _check_timeout(self, pool, item, snap):
        now = self.clock()
        if item.deadline is None or now < item.deadline:
            return
        if item.future is not None:
            # Real seconds, whatever clock the executor runs on: a call is
            # hung when it has not returned within a whole item timeout.
            if time.monotonic() - item.future_since > self.hung_after:
                self._timeout_pending_call(item)
            return
        m = item.last_migration
        what = ('migration %s %s' % (m.id, m.status)) if m else 'no record'
        step = item.data.get('ladder_step', 0)
        asked = item.data.get('ladder_asked')
        while step < len(self.ladder):
            mode = self.ladder[step]
            step += 1
            item.data['ladder_step'] = step
            # Seconds the migration has run (a step after one that could
            # not apply runs at once, not a --step-timeout later).
            waited = now - (item.issued_at if item.issued_at is not None
                            else now)
            if mode == 'leave':
                break
            try:
                call = item.action.on_timeout(self.ctx, item, mode, snap)
            except Exception as exc:
                LOG.debug('on_timeout failed', exc_info=True)
                self.ctx.emit('warning', 'on-timeout failed: %s' %
                              calls.describe(exc), item)
                call = None
            if call is None:
                # Not possible now (e.g. force-complete of a migration
                # that is not running): the next step at once.
                note = '%s after %ds not possible (%s)' % (mode, waited,
                                                           what)
                item.step(note)
                self.ctx.emit('timeout', note, item)
                continue
            item.data['ladder_asked'] = asked = mode
            note = '%s after %ds (%s)' % (mode, waited, what)
            item.step(note)
            self.ctx.emit('timeout', note, item)
            item.deadline = now + self.grace
            item.message = 'timed out after %ds; %s requested' % (
                self.timeout, mode)
            self._submit(pool, item, mode, call)
            return
        if asked:
            self._finish(item, items.TIMEOUT, 'still not finished %ds after '
                         '%s; left running (rerun to pick it up)' % (
                             self.grace, asked))
            return
        self._finish(item, items.TIMEOUT, 'timed out after %ds (%s); left '
                     'running (rerun to pick it up)' % (self.timeout, what))

    def _timeout_pending_call(self, item):
        """The item's deadline passed with one of its calls not answered
        (each HTTP request has a timeout, so this is a call that hangs in
        spite of it): stop waiting for it.  Whether the call took effect
        is unknown; a rerun looks at the cloud afresh."""
        kind = item.future_kind or 'call'
        item.future = None  # its thread is a daemon: never waited for
        item.future_kind = None
        item.data.pop('call_pending', None)
        m = item.last_migration
        what = (' (migration %s %s)' % (m.id, m.status)) if m else ''
        self._finish(item, items.TIMEOUT, 'the %s call did not return within '
                     '%ds%s; it may or may not have taken effect (rerun to '
                     'pick it up)' % (kind, self.hung_after, what))

    # -- main loop
    def _admit(self, plan_items):
        """The queue of items to issue and the in-flight ones to resume."""
        queue: collections.deque = collections.deque()
        inflight = []
        for item in plan_items:
            if item.action is None:
                continue
            if not item.adopt:
                queue.append(item)
                continue
            now = self.clock()
            item.state = items.RUNNING
            item.attempts = 1
            item.started_at = item.issued_at = now
            item.deadline = now + self.timeout
            inflight.append(item)
            self.ctx.emit('resume', 'picking up %s in flight' % (
                'migration %s' % item.migration_id
                if item.migration_id is not None else item.method), item)
        return queue, inflight

    def _watch(self, pool, inflight, snap):
        """Collect finished calls, poll the host once, look at every
        running item and time out the late ones; return the snapshot."""
        for item in list(inflight):
            if item.future is not None and item.future.done():
                self._collect_future(item)
        watching = [i for i in inflight
                    if i.state in (items.RUNNING, items.UNSURE, items.GRACE)
                    and i.future is None]
        if watching:
            new = self._snapshot()
            if new is not None:
                snap = new
                for item in watching:
                    if item.state != items.FINISHED:
                        self._progress(pool, item, snap)
        for item in list(inflight):
            if item.state in (items.ISSUING, items.RUNNING, items.UNSURE,
                              items.GRACE):
                self._check_timeout(pool, item, snap)
        return snap

    def _sort(self, queue, inflight):
        """Finished items leave, re-queued ones go back to the queue; on
        interrupt, the queue is dropped and (the second time) the items in
        flight are left running."""
        if not self.abandon and any(
                i.future is not None and not i.future.done()
                for i in inflight):
            self._leave_hung_call()
        if self.abandon:
            for item in inflight:
                if item.state == items.FINISHED:
                    continue
                m = item.last_migration
                what = (' (migration %s %s)' % (m.id, m.status)
                        if m else '')
                if item.future is not None and not item.future.done():
                    what += ('; its %s call had not answered (it may or '
                             'may not have taken effect)'
                             % (item.future_kind or 'API'))
                self._finish(item, items.INTERRUPTED, 'left in flight%s; '
                             'rerun to pick it up' % what)
            inflight.clear()
        for item in list(inflight):
            if item.state == items.FINISHED:
                inflight.remove(item)
            elif item.state == items.QUEUED and item.future is None:
                inflight.remove(item)
                queue.append(item)
        if self.stopping:
            for item in queue:
                self._finish(item, items.NOT_STARTED,
                             'interrupted before it started')
            queue.clear()

    def _start_ready(self, pool, queue, inflight, snap):
        """Start queued items whose time has come, at most
        ``max_parallel`` in flight; return the (maybe newer) snapshot."""
        now = self.clock()
        guarded = False
        while queue and len(inflight) < self.max_parallel:
            ready = [i for i in queue if i.not_before <= now]
            if not ready:
                break
            if self.guard is not None and not guarded:
                guarded = True
                if not self._guard_allows(queue):
                    break
            item = ready[0]
            requeued = item.data.get('requeued_at')
            if requeued is not None and (
                    snap is None or snap.taken_at <= requeued):
                # A retry looks at the host afresh before issuing.
                new = self._snapshot(force=True)
                if new is None:
                    break
                snap = new
            queue.remove(item)
            inflight.append(item)
            self._start(pool, item, snap)
        return snap

    def _guard_allows(self, queue):
        """Run the guard once for a batch; on refusal, every queued item
        is finished items.NOT_STARTED and the executor stops starting."""
        try:
            self.bounded(self.guard)
            return True
        except errors.NodeOpsError as exc:
            self.stopped_by = errors.one_line(exc)
        self.stopping = True
        self.ctx.emit('lease', self.stopped_by)
        for item in queue:
            self._finish(item, items.NOT_STARTED, 'not started: %s' %
                         self.stopped_by)
        queue.clear()
        return False

    def _wait_time(self, queue, inflight):
        """Until a call returns, the next poll or the next queued start."""
        now = self.clock()
        wait = self.poll_interval
        if self.stopping:   # to see a call hang past interrupt_grace
            wait = min(wait, self.bounded_tick)
        if any(i.future is None for i in inflight):
            wait = min(wait, self._next_poll - now)
        if queue:
            wait = min(wait, min(i.not_before for i in queue) - now)
        return max(0.05, wait)

    def run(self, plan_items, initial_snapshot=None):
        """Execute the items that have an action; return all items."""
        queue, inflight = self._admit(plan_items)
        snap = initial_snapshot
        old_handler = self._install_sigint()
        pool = self._calls
        self.ctx.bounded = self.bounded
        try:
            while queue or inflight:
                self._wake.clear()
                try:
                    snap = self._watch(pool, inflight, snap)
                    self._sort(queue, inflight)
                    snap = self._start_ready(pool, queue, inflight, snap)
                except runtime.Abandoned:
                    # A second interrupt during an API call: report what
                    # is known and leave; the call's thread is not waited
                    # for.
                    self._sort(queue, inflight)
                    break
                if not (queue or inflight):
                    break
                self._wait(self._wait_time(queue, inflight))
        finally:
            self.ctx.bounded = lambda fn: fn()
            if old_handler is not None:
                signal.signal(signal.SIGINT, old_handler)
        return plan_items
