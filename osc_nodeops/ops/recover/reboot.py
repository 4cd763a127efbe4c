"""``server recover-all HOST`` after a reboot (S9, S10): the actions
that bring a server back on its own host, and the plan.

``PowerOn`` (``start``), ``Reboot`` (``reboot``), ``HardReboot``
(``hard-reboot``)
    wait until the server is ACTIVE with power state running.  A start or
    soft reboot that does not come back within ``--timeout`` or goes to
    ERROR is retried as a hard reboot (S10: a hard reboot re-creates the
    libvirt domain XML).

"Stopped on purpose" (S9): a SHUTOFF server is left alone when the newest
power-changing entry of its instance action log is a ``stop`` made by a
user (the action records the user).  When nova's power-state sync stops a
server whose guest vanished (what a host reboot looks like), it calls the
same stop API from a service context, and the action has no user: such
servers were running before and are started.  ``--all`` starts every
SHUTOFF server.

A PAUSED server whose guest is gone (nova shows power state NOSTATE, e.g.
after a compute restart, or shut down or crashed) is hard rebooted, then paused
again when a user had paused it (``HardRebootPaused``).
"""

from osc_nodeops import timeutil
from osc_nodeops.ops import engine
from osc_nodeops.ops.cloud import calls
from osc_nodeops.ops.cloud import nova
from osc_nodeops.ops.recover.common import action_time
from osc_nodeops.ops.recover.common import BUSY
from osc_nodeops.ops.recover.common import GUEST_GONE
from osc_nodeops.ops.recover.common import LEFT_ALONE
from osc_nodeops.ops.recover.common import PAUSE_ACTIONS
from osc_nodeops.ops.recover.common import plan_each
from osc_nodeops.ops.recover.common import stopped_on_purpose


def paused_on_purpose(compute, server):
    """(True, why) if a user paused this server: the newest power-changing
    entry of its instance action log is a ``pause`` with a user."""
    actions = list(calls.call_with_retry(
        lambda: list(compute.server_actions(server.id))))
    actions.sort(key=action_time, reverse=True)
    for action in actions:
        if action.action not in PAUSE_ACTIONS:
            continue
        if action.action == 'pause' and action.user_id:
            return True, 'paused by user %s at %s (instance action log)' % (
                action.user_id, action.start_time)
        return False, 'not paused by a user (last power action: %s%s)' % (
            action.action, '' if action.user_id else ', no user')
    return False, 'no pause recorded in the instance action log'


# ---------------------------------------------------------------- actions

class PowerOn(engine.Action):
    """Start a SHUTOFF server; escalate to a hard reboot (S10).

    ``escalation``: the action a retry or a timeout turns into (a hard
    reboot), or None.  Once escalated, ``item.data['escalated']`` says why
    and the item is the escalation's: its call, its name in the rows.
    """

    name = 'start'
    success = 'running'

    def __init__(self, escalation=None):
        self.escalation = escalation

    def _escalated(self, item):
        return self.escalation is not None and 'escalated' in item.data

    def method_name(self, item):
        if self._escalated(item):
            return self.escalation.method_name(item)
        return self.name

    def _call(self, ctx, item):
        ctx.compute.start_server(item.id)

    def issue(self, ctx, item):
        if self._escalated(item):
            return self.escalation.issue(ctx, item)
        if self.escalation is not None and item.attempts > 1:
            return self._escalate(ctx, item, 'retry after: %s' % (
                item.message or 'failure'))
        self._call(ctx, item)

    def _escalate(self, ctx, item, why):
        item.data['escalated'] = why
        ctx.emit('escalate', 'hard reboot (%s)' % why, item)
        self.escalation.issue(ctx, item)

    def progress(self, ctx, item, snap):
        srv = snap.server(item.id)
        if srv is None:
            return engine.Check(engine.FATAL, 'no longer on %s' % snap.host)
        if srv.task_state:
            return engine.Check(engine.PENDING, '%s, task %s' % (
                srv.status, srv.task_state))
        if (srv.status == 'ACTIVE'
                and srv.power_state == nova.POWER_RUNNING):
            return engine.Check(engine.COMPLETE, 'running')
        if srv.status == 'ERROR':
            fault = (srv.fault or {}).get('message') if isinstance(
                srv.fault, dict) else srv.fault
            return engine.Check(engine.FAILED, 'went to ERROR%s' % (
                ': %s' % fault if fault else ''))
        # nova sets the task state in the API call itself, and we only see
        # snapshots taken after the call returned: no task and not running
        # means the operation ended and the server is not back.
        return engine.Check(engine.FAILED, 'came back %s with power state %s'
                            % (srv.status, srv.power_state))

    def verify(self, ctx, item, snap):
        srv = snap.server(item.id)
        if (srv is None or srv.status != 'ACTIVE'
                or srv.power_state != nova.POWER_RUNNING):
            return False, 'not running', None
        msg = ''
        if item.data.get('escalated'):
            msg = 'escalated to a hard reboot (%s)' % item.data['escalated']
        return True, msg, snap.host

    def on_timeout(self, ctx, item, mode, snap):
        if self.escalation is None or self._escalated(item):
            return None
        why = 'not back within %ss' % timeutil.seconds_text(
            ctx.options.get('timeout', 0))
        return lambda: self._escalate(ctx, item, why)


class Reboot(PowerOn):
    name = 'reboot'

    def _call(self, ctx, item):
        ctx.compute.reboot_server(item.id, 'SOFT')


class HardReboot(PowerOn):
    name = 'hard-reboot'

    def _call(self, ctx, item):
        ctx.compute.reboot_server(item.id, 'HARD')


class HardRebootPaused(HardReboot):
    """A PAUSED server whose guest is gone (a compute restart forgot it):
    hard reboot it (re-creates the guest), then pause it again, since its
    owner had paused it."""

    success = 'paused'

    def issue(self, ctx, item):
        item.data.pop('pausing', None)
        self._call(ctx, item)

    def progress(self, ctx, item, snap):
        srv = snap.server(item.id)
        if item.data.get('pausing') and srv is not None:
            if srv.task_state:
                return engine.Check(engine.PENDING, '%s, task %s' % (
                    srv.status, srv.task_state))
            if (srv.status == 'PAUSED'
                    and srv.power_state not in GUEST_GONE):
                return engine.Check(engine.COMPLETE, 'paused again')
            return engine.Check(engine.FAILED, 'pause did not take: %s with '
                                'power state %s' % (srv.status,
                                                    srv.power_state))
        check = super().progress(ctx, item, snap)
        if check.state != engine.COMPLETE:
            return check
        item.data['pausing'] = True
        sid = item.id
        return engine.Check(engine.CALL, 'running again; pause it again (its '
                            'owner had paused it)',
                            call=lambda: ctx.compute.pause_server(sid))

    def verify(self, ctx, item, snap):
        srv = snap.server(item.id)
        if srv is None or srv.status != 'PAUSED' or \
                srv.power_state in GUEST_GONE:
            return False, 'not paused', None
        return True, 'guest re-created by a hard reboot, paused again', \
            snap.host


# The actions hold no state of their own (an item's state is on the item).
HARD_REBOOT = HardReboot()
START = PowerOn(escalation=HARD_REBOOT)
REBOOT = Reboot(escalation=HARD_REBOOT)
HARD_REBOOT_PAUSED = HardRebootPaused()



# ---------------------------------------------------------------- planning

def plan_reboot(ctx, snap, opts):
    """S9: what to do with each server of a host that was rebooted."""
    return plan_each(snap, opts.exclude,
                     lambda srv: _plan_restart(ctx, opts, srv))


def _plan_restart(ctx, opts, srv):
    if srv.task_state:
        return engine.PlanItem(srv, reason='busy: task %s' % srv.task_state)
    status = srv.status
    running = srv.power_state == nova.POWER_RUNNING
    if status == 'ACTIVE' and running:
        return engine.PlanItem(srv, reason='already running',
                               success_if_skipped=True)
    if status == 'ACTIVE':
        return engine.PlanItem(
            srv, HARD_REBOOT if opts.hard else REBOOT,
            reason='ACTIVE but power state %s' % srv.power_state)
    if status == 'SHUTOFF':
        purpose, why = (False, '--all')
        if not opts.all:
            purpose, why = stopped_on_purpose(ctx.compute, srv)
        if purpose:
            return engine.PlanItem(srv, reason=why, success_if_skipped=True)
        return engine.PlanItem(
            srv, HARD_REBOOT if opts.hard else START, reason=why)
    if status == 'ERROR':
        return engine.PlanItem(
            srv, HARD_REBOOT, reason='ERROR: hard reboot (re-creates '
            'the guest from its definition)')
    if status == 'PAUSED':
        return _plan_paused(ctx, srv)
    if status in LEFT_ALONE:
        return engine.PlanItem(srv, reason=LEFT_ALONE[status],
                               success_if_skipped=True)
    return engine.PlanItem(srv, reason=BUSY.get(
        status, '%s: not handled' % status))


def _plan_paused(ctx, srv):
    """A live paused guest is left alone; one whose guest is gone (nova
    shows NOSTATE, e.g. after a compute restart, or shut down or crashed)
    is hard rebooted, and paused again if a user had paused it."""
    purpose, why = paused_on_purpose(ctx.compute, srv)
    if srv.power_state not in GUEST_GONE:
        return engine.PlanItem(srv, reason='PAUSED: %s; left as it is' % why,
                               success_if_skipped=True)
    gone = 'PAUSED but the guest is gone (power state %s)' % srv.power_state
    if purpose:
        return engine.PlanItem(srv, HARD_REBOOT_PAUSED, reason=(
            '%s; %s: hard reboot, then pause again' % (gone, why)))
    return engine.PlanItem(srv, HARD_REBOOT, reason='%s; %s: hard reboot' % (
        gone, why))
