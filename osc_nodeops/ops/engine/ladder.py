"""``--on-timeout``: what happens to an item whose time is up.

An item's ``--timeout`` counts the time nova works on its move, not the
time the move waits in nova's queue behind others (``Ladder.running_time``:
nova runs ``max_concurrent_live_migrations`` per source, default 1, and
queues the rest).  When it has passed, the first step of its ladder runs
(``abort``, ``force-complete``: the action's ``on_timeout`` call), each
further one ``--step-timeout`` after the one before; after the last (or
at ``leave``) the item ends ``timeout``, its operation left running.
"""

import logging
import time

from osc_nodeops import errors
from osc_nodeops import timeutil
from osc_nodeops.ops.cloud import nova
from osc_nodeops.ops.engine import items

LOG = logging.getLogger(__name__)

ON_TIMEOUT_CHOICES = ('abort', 'force-complete', 'leave')


def parse_ladder(value):
    """``--on-timeout``: one step or a comma-separated sequence (the
    escalation ladder), as a tuple in order.

    The first step runs when ``--timeout`` has passed, each further one
    ``--step-timeout`` after the one before; ``leave`` (stop waiting, the
    migration left running) only as the last step.  ``ValueError`` with
    one line for anything else."""
    if isinstance(value, (list, tuple)):
        steps = tuple(value)
    else:
        steps = tuple(s.strip() for s in str(value or '').split(','))
    bad = [s for s in steps if s not in ON_TIMEOUT_CHOICES]
    if not steps or bad:
        raise ValueError('--on-timeout: %r is not a step (one of %s, or a '
                         'comma sequence such as force-complete,abort)' % (
                             bad[0] if bad else value,
                             ', '.join(ON_TIMEOUT_CHOICES)))
    if 'leave' in steps[:-1]:
        raise ValueError('--on-timeout: leave can only be the last step')
    if len(set(steps)) != len(steps):
        raise ValueError('--on-timeout: a step is named twice')
    return steps


class Ladder(object):
    """The timeouts of one executor run and the steps after them."""

    def __init__(self, ctx, on_timeout, timeout, grace, hung_after):
        self.ctx = ctx
        self.steps = parse_ladder(on_timeout)
        self.timeout = timeout
        # How long each step of the ladder gets before the next one (and
        # the last one before the item is left running).
        self.grace = grace
        # Real seconds after which a call that has not returned is given up.
        self.hung_after = hung_after

    def timeout_of(self, item):
        """The item's own ``--timeout`` (``item.timeout``: the drain's
        ``--timeout-per-gib``), else the run's."""
        return item.timeout or self.timeout

    def check(self, item, snap, now):
        """None while ``item`` has time.  After its deadline:
        ``Check(CALL, mode, call=fn)``, the next step's call to run now
        (the item gets ``grace`` seconds more), or ``Check(TIMEOUT,
        message)``: the item ends ``timeout``."""
        self.move_deadline(item, snap, now)
        if item.deadline is None or now < item.deadline:
            return None
        if item.future is not None:
            # Real seconds, whatever clock the executor runs on: a call is
            # hung when it has not returned within a whole item timeout.
            if time.monotonic() - item.future_since > self.hung_after:
                return self._hung(item)
            return None
        m = item.last_migration
        what = ('migration %s %s' % (m.id, m.status)) if m else 'no record'
        step = item.data.get('ladder_step', 0)
        asked = item.data.get('ladder_asked')
        while step < len(self.steps):
            mode = self.steps[step]
            step += 1
            item.data['ladder_step'] = step
            # Seconds the migration has run (a step after one that could
            # not apply runs at once, not a --step-timeout later).
            waited = now - item.data.get('clock_from', (
                item.issued_at if item.issued_at is not None else now))
            if mode == 'leave':
                break
            try:
                call = item.action.on_timeout(self.ctx, item, mode, snap)
            except Exception as exc:
                LOG.debug('on_timeout failed', exc_info=True)
                self.ctx.emit('warning', 'on-timeout failed: %s' %
                              errors.one_line(exc, style=errors.STATUS), item)
                call = None
            if call is None:
                # Not possible now (e.g. force-complete of a migration
                # that is not running): the next step at once.
                note = '%s after %ss not possible (%s)' % (
                    mode, timeutil.seconds_text(waited), what)
                item.step(note)
                self.ctx.emit('timeout', note, item)
                continue
            item.data['ladder_asked'] = asked = mode
            note = '%s after %ss (%s)' % (
                mode, timeutil.seconds_text(waited), what)
            item.step(note)
            self.ctx.emit('timeout', note, item)
            item.deadline = now + self.grace
            item.message = 'timed out after %ss; %s requested' % (
                timeutil.seconds_text(self.timeout_of(item)), mode)
            return items.Check(items.CALL, mode, call=call)
        if asked:
            return items.Check(items.TIMEOUT, 'still not finished %ss after '
                               '%s; left running (rerun to pick it up)' % (
                                   timeutil.seconds_text(self.grace), asked))
        return items.Check(items.TIMEOUT, 'timed out after %ss (%s); left '
                           'running (rerun to pick it up)' % (
                               timeutil.seconds_text(self.timeout_of(item)),
                               what))

    def move_deadline(self, item, snap, now):
        """Before the ladder's first step: the deadline follows nova's
        queue (``running_time``), and a stalled migration's
        (``--stall-timeout``, ``MigrationAction.watch_progress``) is now."""
        self.running_time(item, snap)
        if item.data.get('stalled') and not item.data.get('ladder_step') \
                and item.deadline is not None:
            item.deadline = min(item.deadline, now)

    def running_time(self, item, snap):
        """Keep the clock of a move that waits in nova's queue.

        The action names its waiting statuses (``queue_statuses``: a live
        migration's ``accepted`` and ``queued``).  While the move waits, its
        clock starts again each time a move that was ahead of it in the
        queue (an unfinished one from the same source when ours was first
        seen waiting) changes status: the queue moved, so the wait is
        nova's, not a stuck move's.  A queue that does not move (a move
        ahead that never ends) leaves the clock running: the wait is
        bounded.  Once ours leaves the queue, its clock starts once more,
        at the poll that saw it, and from then counts on: ``--timeout`` is
        the time nova worked on it.  Not after a ladder step."""
        waiting = getattr(item.action, 'queue_statuses', ())
        m = item.last_migration
        if (not waiting or m is None or snap is None
                or item.state != items.RUNNING
                or item.data.get('ladder_step')
                or item.data.get('left_queue')):
            return
        if m.status not in waiting:
            item.data['left_queue'] = True
            self._restart_clock(item, snap.taken_at)
            return
        ahead = item.data.get('queue_ahead')
        seen = {o.id: o.status for o in snap.migrations_by_id.values()
                if o.server_id != item.id
                and o.source_compute == item.source
                and (ahead is not None and o.id in ahead
                     or ahead is None and o.status not in
                     nova.MIGRATION_FINAL)
                and (not item.action.migration_types
                     or o.migration_type in item.action.migration_types)}
        if ahead is None:
            item.data['queue_ahead'] = seen
            return
        moved = {i: s for i, s in seen.items() if ahead.get(i) != s}
        if moved:
            ahead.update(moved)
            self._restart_clock(item, snap.taken_at)

    def _restart_clock(self, item, at):
        item.data['clock_from'] = at
        item.deadline = at + self.timeout_of(item)

    def _hung(self, item):
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
        return items.Check(items.TIMEOUT, 'the %s call did not return '
                           'within %ss%s; it may or may not have taken '
                           'effect (rerun to pick it up)' % (
                               kind, timeutil.seconds_text(self.hung_after),
                               what))
