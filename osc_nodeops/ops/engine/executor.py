"""The bounded-parallel ``Executor`` of plan items: retries, transient
faults; its timeouts are ``ladder.Ladder``'s, its Ctrl-C and the waits for
calls ``interrupts.Interrupts``', its polls ``snapshot.Polls``."""

import collections
import dataclasses
import logging
import threading
import time

from osc_nodeops import errors
from osc_nodeops.ops import runtime
from osc_nodeops.ops.cloud import calls
from osc_nodeops.ops.engine import interrupts
from osc_nodeops.ops.engine import items
from osc_nodeops.ops.engine import ladder
from osc_nodeops.ops.engine import slots as slots_mod
from osc_nodeops.ops.engine import snapshot

LOG = logging.getLogger(__name__)


@dataclasses.dataclass
class ExecutorOptions(object):
    """The options of a command whose moves the executor runs (the base of
    ``drain.Options`` and ``recover.Options``): at most ``max_parallel``
    at once, ``timeout`` seconds each, ``retries`` more attempts
    ``retry_delay`` seconds apart, a look at the host every
    ``poll_interval`` seconds.  The defaults are drain's; a command that
    wants others says so in its own dataclass (recover-all: 300 s, 2 s
    between attempts)."""

    max_parallel: int = 4
    timeout: float = 600.0
    retries: int = 1
    retry_delay: float = 5.0
    poll_interval: float = 2.0


class Executor(object):
    """Bounded-parallel runner of plan items; see the module docstring."""

    @classmethod
    def from_options(cls, ctx, poller, opts, on_timeout=None, **kwargs):
        """An executor configured from a command's options object (an
        ``ExecutorOptions``: ``max_parallel``, ``poll_interval``, ``timeout``,
        ``retries``, ``retry_delay``; and, unless given, ``on_timeout``)."""
        return cls(ctx, poller, max_parallel=opts.max_parallel,
                   poll_interval=opts.poll_interval, timeout=opts.timeout,
                   on_timeout=on_timeout or opts.on_timeout,
                   retries=opts.retries, retry_delay=opts.retry_delay,
                   **dict({'step_timeout': getattr(opts, 'step_timeout',
                                                   None)}, **kwargs))

    def __init__(self, ctx, poller, max_parallel=4, poll_interval=2.0,
                 timeout=600.0, on_timeout='abort', retries=1,
                 retry_delay=5.0, transient_retries=6, grace=None,
                 hung_after=None, step_timeout=None, guard=None,
                 slots=None):
        if max_parallel < 1:
            raise ValueError('max_parallel must be at least 1')
        if step_timeout is not None:
            grace = step_timeout
        self.ladder = ladder.Ladder(
            ctx, on_timeout, timeout,
            grace if grace is not None else max(60.0, timeout / 2),
            hung_after if hung_after is not None else timeout)
        self.ctx = ctx
        self.max_parallel = max_parallel
        self.timeout = timeout
        self.retries = retries
        self.retry_delay = retry_delay
        self.transient_retries = transient_retries
        # Time, waits and Ctrl-C: the run's ``runtime.Runtime``.
        self.clock = ctx.runtime.clock
        self._wake = threading.Event()
        self._wait = ctx.runtime.wait or self._wake.wait
        self.interrupts = interrupts.Interrupts(ctx.emit, self._wake,
                                                ctx.runtime.handle_sigint)
        self.bounded = self.interrupts.bounded
        self.polls = snapshot.Polls(poller, poll_interval, ctx.emit,
                                    self.bounded)
        # Called before each batch of starts (the host lease's ``check``):
        # when it raises an ``errors.NodeOpsError``, nothing more starts,
        # the moves in flight are still watched, and ``stopped_by`` says
        # why (one line).
        self.guard = guard
        self.stopped_by = None
        # ``slots.Slots``: a move starts only with a free slot out of its
        # source and into its destination (None: ``max_parallel`` only).
        self.slots = slots

    def _finish(self, item, result, message=''):
        detail = item.finish(result, message, self.clock())
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

    def _start(self, pool, item, snap):
        try:
            stop = item.action.precheck(self.ctx, item, snap)
        except Exception as exc:
            n = item.put_off(self.clock(), exc)
            if n:
                self.ctx.retried(exc, n, item)
                return
            stop = items.Check(items.FAILED, 'precheck failed: %s' %
                               errors.one_line(exc, style=errors.STATUS))
        if stop is not None:
            if item.started_at is None:
                item.started_at = self.clock()
            self._finish(item, items.FAILED, stop.message)
            return
        item.begin_attempt(self.clock(), self.ladder.timeout_of(item), snap)
        self.ctx.emit('start', '%s (attempt %d)' % (item.method,
                                                     item.attempts), item)
        self._submit(pool, item, 'issue',
                     lambda: item.action.issue(self.ctx, item))

    def _requeue(self, item):
        item.requeue(self.clock(), self.retry_delay, self.ctx.target_host)

    def _retry_or_fail(self, item, message):
        if item.attempts <= self.retries and not self.interrupts.stopping:
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
        if not self.interrupts.stopping:
            try:
                fallback = item.action.fallback(self.ctx, item)
            except Exception as exc:
                LOG.debug('fallback failed', exc_info=True)
                self.ctx.emit('warning', 'fallback not possible: %s' %
                              errors.one_line(exc, style=errors.STATUS), item)
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
        why = errors.one_line(exc, style=errors.STATUS) if exc else ''
        now = self.clock()
        if kind == 'issue':
            if exc is None:
                item.state = items.RUNNING
                item.issued_at = now
                item.deadline = now + self.ladder.timeout_of(item)
                item.transient = 0
                self.ctx.emit('issued', item.method, item)
            elif calls.is_transient(exc):
                item.transient += 1
                item.state = items.UNSURE
                item.issued_at = now
                item.deadline = now + self.ladder.timeout_of(item)
                self.ctx.emit('unsure', 'transient fault while issuing (%s); '
                              'checking whether it went through' % why, item)
            else:
                self._retry_or_fail(item, 'refused: %s' % why)
        else:  # follow-up call or on-timeout call
            item.data.pop('call_pending', None)
            if exc is None:
                item.transient = 0
                return
            if calls.is_transient(exc):
                item.transient += 1
                self.ctx.emit('retry', '%s: transient fault (%s)' % (
                    kind, why), item)
                # progress() will ask for the call again on a later poll
                item.data.pop('call_pending', None)
                return
            item.message = '%s failed: %s' % (kind, why)
            self.ctx.emit('warning', item.message, item)
            item.data.pop('call_pending', None)
            if kind in self.ladder.steps:
                # The cloud refused this step: the next one at once.
                item.step('%s refused: %s' % (kind, why))
                item.deadline = now

    def _snapshot(self, force=False):
        return self.polls.take(self.clock(), force)

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
                              errors.one_line(exc, style=errors.STATUS), item)
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
                                + errors.one_line(exc, style=errors.STATUS))
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
                              'looking again' % errors.one_line(
                                  exc, style=errors.STATUS), item)
                return
            ok, message, dest = (False, 'verification failed: %s' %
                                 errors.one_line(
                                     exc, style=errors.STATUS), None)
        item.destination = dest or check.destination
        if not ok:
            self._retry_or_fail(item, 'verification failed: ' + message)
            return
        try:
            action.finished(self.ctx, item)
        except Exception as exc:
            message = 'done, but: ' + errors.one_line(exc, style=errors.STATUS)
        item.message = message
        self._finish(item, action.success, message)

    def _check_timeout(self, pool, item, snap):
        check = self.ladder.check(item, snap, self.clock())
        if check is None:
            return
        if check.state == items.CALL:
            self._submit(pool, item, check.message, check.call)
        else:
            self._finish(item, items.TIMEOUT, check.message)

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
            item.resume(self.clock(), self.ladder.timeout_of(item))
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
        if not self.interrupts.abandon and any(
                i.future is not None and not i.future.done()
                for i in inflight):
            self.interrupts.leave_hung_call()
        if self.interrupts.abandon:
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
            for item in inflight:
                self._release(item)
            inflight.clear()
        for item in list(inflight):
            if item.state == items.FINISHED:
                inflight.remove(item)
                self._release(item)
            elif item.state == items.QUEUED and item.future is None:
                inflight.remove(item)
                self._release(item)
                queue.append(item)
        if self.interrupts.stopping:
            for item in queue:
                self._finish(item, items.NOT_STARTED,
                             'interrupted before it started')
            queue.clear()

    def _start_ready(self, pool, queue, inflight, snap):
        """Start queued items whose time has come, at most
        ``max_parallel`` in flight; return the (maybe newer) snapshot."""
        now = self.clock()
        guarded = looked = False
        while queue and len(inflight) < self.max_parallel:
            ready = [i for i in queue if i.not_before <= now]
            if not ready:
                break
            if self.slots is not None and snap is None:
                snap = self._snapshot()   # the slots count the wave's poll
                if snap is None:
                    break
            item = ready[0] if self.slots is None else slots_mod.pick(
                self.slots, ready, snap, self.ctx, now, self.ladder.timeout_of)
            for late in [i for i in ready if i.data.get('slot_overdue')]:
                queue.remove(late)   # waited for a slot past its --timeout
                self._finish(late, items.TIMEOUT, late.data['slot_overdue'])
            if item is None:   # no free slot; with none of ours in flight
                # no poll watches them: look here, once, when a poll is due
                new = None if inflight or looked else self._snapshot()
                looked = True
                if new is None:
                    break
                snap = new
                continue
            if self.guard is not None and not guarded:   # before a start
                guarded = True
                if not self._guard_allows(queue):
                    self._release(item)
                    break
            requeued = item.data.get('requeued_at')
            if requeued is not None and (
                    snap is None or snap.taken_at <= requeued):
                # A retry looks at the host afresh before issuing.
                new = self._snapshot(force=True)
                if new is None:
                    self._release(item)
                    break
                snap = new
            queue.remove(item)
            inflight.append(item)
            self._start(pool, item, snap)
            if item.state == items.QUEUED:   # put off: _sort re-queues it
                break
        return snap

    def _release(self, item):
        if self.slots is not None:
            self.slots.release(item)

    def _guard_allows(self, queue):
        """Run the guard once for a batch; on refusal, every queued item
        is finished items.NOT_STARTED and the executor stops starting."""
        try:
            self.bounded(self.guard)
            return True
        except errors.NodeOpsError as exc:
            self.stopped_by = errors.one_line(exc)
        self.interrupts.stopping = True
        self.ctx.emit('lease', self.stopped_by)
        for item in queue:
            self._finish(item, items.NOT_STARTED, 'not started: %s' %
                         self.stopped_by)
        queue.clear()
        return False

    def _wait_time(self, queue, inflight):
        """Until a call returns, the next poll or the next queued start."""
        now = self.clock()
        wait = self.polls.interval
        if self.interrupts.stopping:   # to see a call hang past its grace
            wait = min(wait, self.interrupts.tick)
        if any(i.future is None for i in inflight) or (
                queue and self.slots is not None):   # a slot frees at a poll
            wait = min(wait, self.polls.next_at - now)
        later = [i.not_before for i in queue if i.not_before > now]
        if later:
            wait = min(wait, min(later) - now)
        return max(0.05, wait)

    def run(self, plan_items, initial_snapshot=None):
        """Execute the items that have an action; return all items."""
        queue, inflight = self._admit(plan_items)
        snap = initial_snapshot
        pool = self.interrupts.calls
        with self.interrupts.sigint():
            self.ctx.bounded = self.bounded
            try:
                while queue or inflight:
                    self._wake.clear()
                    try:
                        snap = self._watch(pool, inflight, snap)
                        self._sort(queue, inflight)
                        snap = self._start_ready(pool, queue, inflight,
                                                 snap)
                    except runtime.Abandoned:
                        # A second interrupt during an API call: report
                        # what is known and leave; the call's thread is
                        # not waited for.
                        self._sort(queue, inflight)
                        break
                    if not (queue or inflight):
                        break
                    self._wait(self._wait_time(queue, inflight))
            finally:
                self.ctx.bounded = lambda fn: fn()
        return plan_items
