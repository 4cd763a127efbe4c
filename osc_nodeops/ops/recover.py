"""Bring back the servers of a host: after a reboot (S9, S10) or after the
host died (S19, S20, S22), then re-attach volumes (S18) on request.

Everything runs on the drain engine (``ops/engine.py``): plan items, the
bounded executor, the host-wide poller, timeouts and retries.  This module
adds the per-method actions:

``PowerOn`` (``start``), ``Reboot`` (``reboot``), ``HardReboot``
(``hard-reboot``)
    wait until the server is ACTIVE with power state running.  A start or
    soft reboot that does not come back within ``--timeout`` or goes to
    ERROR is retried as a hard reboot (S10: a hard reboot re-creates the
    libvirt domain XML).
``Evacuate`` (``evacuate``)
    the migration record of type ``evacuation`` must reach ``done``, the
    server must have left the dead host, and it must come back in the power
    state it had: from compute API 2.95 nova delivers evacuated servers
    stopped, so the ones that were running are started again.
``Reattach`` (``reattach``)
    once a server is up: detach each volume, wait until available, attach
    it again at the same device, wait until in-use (S18).

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

import dataclasses
import datetime
import logging

from osc_nodeops import errors
from osc_nodeops import timeutil
from osc_nodeops.ops import engine
from osc_nodeops.ops import fencing

LOG = logging.getLogger(__name__)

COMPUTE_BINARY = engine.COMPUTE_BINARY
# nova power states that say the guest is gone: NOSTATE, SHUTDOWN, CRASHED
# (a PAUSED server whose guest exists shows PAUSED, or RUNNING on drivers
# that do not report pausing, such as nova's fake driver).
GUEST_GONE = (0, 4, 6)

# Instance actions that change what the owner wants the power state to be.
POWER_ACTIONS = ('create', 'start', 'stop', 'reboot', 'rebuild', 'unshelve',
                 'evacuate', 'resume', 'restore', 'unrescue', 'unpause')
PAUSE_ACTIONS = POWER_ACTIONS + ('pause',)

# States the owner chose; recover-all leaves them alone (not a failure).
LEFT_ALONE = {
    'PAUSED': 'PAUSED: paused by its owner; left as it is',
    'SUSPENDED': 'SUSPENDED: suspended by its owner; left as it is',
    'SHELVED': 'SHELVED: shelved; left as it is',
    'SHELVED_OFFLOADED': 'SHELVED_OFFLOADED: has no host',
    'RESCUE': 'RESCUE: in rescue mode; left as it is',
    'SOFT_DELETED': 'SOFT_DELETED: left as it is',
}
# States recover-all cannot handle now (a failure: the server is not back).
BUSY = {
    'BUILD': 'BUILD: still being built',
    'MIGRATING': 'MIGRATING: a migration is in progress',
    'RESIZE': 'RESIZE: a resize is in progress',
    'VERIFY_RESIZE': 'VERIFY_RESIZE: confirm or revert the resize first',
    'REBUILD': 'REBUILD: a rebuild is in progress',
}


@dataclasses.dataclass
class Options(object):
    """The request of ``server recover-all``: what the command line says.

    ``nova_db`` / ``neutron_db`` (``--via-db``) are ``dbmove.DBSource``;
    ``journal`` is where a ``--via-db --execute`` move writes its journal.
    """

    host: str | None = None
    dead: bool = False
    via_db: bool = False
    execute: bool = False
    dry_run: bool = False
    all: bool = False
    hard: bool = False
    target_host: str | None = None
    force_down: bool = False
    confirm_fenced: str | None = None
    fence_check: str | None = None
    fence_timeout: float = fencing.FENCE_TIMEOUT
    reattach_volumes: bool = False
    max_parallel: int = 4
    timeout: float = 300.0
    retries: int = 1
    retry_delay: float = 2.0
    poll_interval: float = 2.0
    exclude: tuple = ()
    nova_db: object = None
    neutron_db: object = None
    journal: str | None = None
    break_lease: bool = False


@dataclasses.dataclass
class Report(object):
    host: str
    items: list
    notes: list = dataclasses.field(default_factory=list)
    ok: bool = True
    interrupted: bool = False
    journal: str | None = None


# --------------------------------------------------------------- services

def compute_service(compute, host):
    """The nova-compute service of ``host``; ``errors.NotFound`` if none."""
    return engine.find_compute_service(compute, host, errors.NotFound)


def is_down(service):
    return bool(service.is_forced_down) or service.state == 'down'


def validate(opts, host=None):
    """Usage errors (``errors.UsageError``), before anything is asked;
    ``host`` (default ``opts.host``) is the host being recovered."""
    usage = errors.UsageError
    host = host or opts.host
    if opts.max_parallel < 1:
        raise usage('--max-parallel must be at least 1')
    if not opts.timeout > 0:
        raise usage('--timeout must be positive')
    if opts.retries < 0:
        raise usage('--retries must be 0 or more')
    if opts.via_db and not opts.dead:
        raise usage('--via-db is a dead-host path: add --dead')
    if opts.via_db and not opts.target_host:
        raise usage('--via-db needs --target-host (the DB move names the '
                    'new host)')
    if opts.execute and opts.dry_run:
        raise usage('--dry-run and --execute contradict each other')
    if opts.execute and not opts.via_db:
        raise usage('--execute applies a --via-db move; other modes act '
                    'unless --dry-run is given')
    if not opts.dead and (opts.force_down or opts.confirm_fenced
                          or opts.target_host):
        raise usage('--force-down, --confirm-fenced and --target-host '
                    'belong to --dead')
    fencing.validate(opts, host)


def check_host(compute, host, opts, force_down=True):
    """Refuse when the host's service is not in the state the mode needs.

    Returns ``(service, note, fenced)``.  In dead mode the host must be
    fenced (``ops/fencing.py``: ``fenced`` is a ``fencing.Fenced``, None in
    reboot mode); with ``--force-down`` and that evidence the service is
    forced down (unless ``force_down`` is False: the dry run only says it
    would).
    """
    service = compute_service(compute, host)
    if not opts.dead:
        if is_down(service):
            raise errors.Refused(
                'nova-compute on %s is %s: the host is dead, not rebooted; '
                'use --dead to evacuate it' % (
                    host, 'forced down' if service.is_forced_down
                    else 'down'))
        return service, 'nova-compute on %s is up' % host, None
    if opts.target_host:
        if opts.target_host == host:
            raise errors.UsageError('--target-host is the dead host itself')
        target = compute_service(compute, opts.target_host)
        if is_down(target):
            raise errors.Refused('target host %s: nova-compute is down' %
                                 opts.target_host)
    if is_down(service):
        fenced = fencing.Fenced(fencing.evidence(service, host, opts))
        return service, 'nova-compute on %s is %s; %s' % (
            host, 'forced down' if service.is_forced_down else 'down',
            fenced.note), fenced
    if not opts.force_down:
        raise errors.Refused(
            'nova-compute on %s is still up (or not yet reported down): '
            'evacuating a host that still runs its servers runs each disk '
            'twice. Wait until it is reported down, or fence (power off) '
            'the host and pass --force-down --confirm-fenced %s (or '
            '--fence-check CMD)' % (host, host))
    fenced = fencing.Fenced(fencing.evidence(service, host, opts),
                            forced_by_us=True)
    if not force_down:
        return service, ('dry run: nova-compute on %s is up and would be '
                         'forced down (%s)' % (host, fenced.note)), fenced
    engine.call_with_retry(lambda: compute.update_service_forced_down(
        service, host=host, binary=COMPUTE_BINARY, forced=True))
    return service, ('nova-compute on %s forced down (%s)' % (
        host, fenced.note)), fenced


# ------------------------------------------------------ stopped on purpose

def _action_time(action):
    return timeutil.parse_time(action.start_time) or timeutil.EPOCH


def stopped_on_purpose(compute, server, ignore=()):
    """(True, why) if the owner (a user) stopped this server on purpose.

    ``ignore``: power actions to look through (``evacuate``: what the
    owner wanted before the evacuation)."""
    actions = list(engine.call_with_retry(
        lambda: list(compute.server_actions(server.id))))
    actions.sort(key=_action_time, reverse=True)
    for action in actions:
        if action.action not in POWER_ACTIONS or action.action in ignore:
            continue
        if action.action == 'stop':
            if action.user_id:
                return True, ('stopped by user %s at %s (instance action '
                              'log); --all starts it' % (
                                  action.user_id, action.start_time))
            return False, ('stopped by nova (power-state sync, no user) at '
                           '%s' % action.start_time)
        return False, 'last power action: %s' % action.action
    return False, 'no power action recorded'


def paused_on_purpose(compute, server):
    """(True, why) if a user paused this server: the newest power-changing
    entry of its instance action log is a ``pause`` with a user."""
    actions = list(engine.call_with_retry(
        lambda: list(compute.server_actions(server.id))))
    actions.sort(key=_action_time, reverse=True)
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
                and srv.power_state == engine.POWER_RUNNING):
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
                or srv.power_state != engine.POWER_RUNNING):
            return False, 'not running', None
        msg = ''
        if item.data.get('escalated'):
            msg = 'escalated to a hard reboot (%s)' % item.data['escalated']
        return True, msg, snap.host

    def on_timeout(self, ctx, item, mode, snap):
        if self.escalation is None or self._escalated(item):
            return None
        why = 'not back within %ds' % ctx.options.get('timeout', 0)
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


class Evacuate(engine.MigrationAction):
    """S20 through the API; restores the power state it had (2.95)."""

    name = 'evacuate'
    success = 'evacuated'
    migration_types = ('evacuation',)
    done_statuses = ('done', 'completed')
    restart_after = 20.0   # seconds before starting a stopped one again
    max_starts = 3

    def issue(self, ctx, item):
        ctx.compute.evacuate_server(item.id, host=ctx.target_host)

    def _wanted(self, item):
        if item.data.get('wanted'):
            return item.data['wanted']
        return 'ACTIVE' if item.status_before in ('ACTIVE', 'ERROR') \
            else item.status_before

    def check_migration(self, ctx, item, snap, m):
        check = super().check_migration(ctx, item, snap, m)
        if check.state != engine.COMPLETE:
            return check
        if snap.on_host(item.id):
            return engine.Check(engine.PENDING, 'migration %s done, server '
                                'still listed on %s' % (m.id, snap.host))
        srv = snap.elsewhere(item.id)
        if srv is None:
            return engine.Check(engine.PENDING, 'migration %s done; waiting '
                                'to see the server on %s' % (
                                    m.id, m.dest_compute))
        if srv.task_state:
            return engine.Check(engine.PENDING, '%s on %s, task %s' % (
                srv.status, srv.compute_host, srv.task_state))
        if srv.status == 'ERROR':
            return engine.Check(engine.FATAL, 'ERROR on %s after '
                                'evacuation' % srv.compute_host)
        wanted = self._wanted(item)
        if srv.status == 'SHUTOFF' and wanted == 'ACTIVE':
            # Start it; again if it is still stopped a while later (a start
            # refused while nova finished the rebuild, or lost).
            last = item.data.get('start_at')
            starts = item.data.get('starts', 0)
            if last is None or (snap.taken_at - last > self.restart_after
                                and starts < self.max_starts):
                item.data['start_at'] = snap.taken_at
                item.data['starts'] = starts + 1
                sid = item.id
                return engine.Check(
                    engine.CALL, 'start (was running; evacuated servers '
                    'arrive stopped from compute API 2.95)',
                    call=lambda: ctx.compute.start_server(sid))
            return engine.Check(engine.PENDING, 'SHUTOFF on %s, start '
                                'issued' % srv.compute_host)
        if srv.status == wanted and (
                wanted != 'ACTIVE' or srv.power_state == engine.POWER_RUNNING):
            return engine.Check(engine.COMPLETE, m.status,
                                destination=srv.compute_host)
        return engine.Check(engine.PENDING, '%s on %s' % (
            srv.status, srv.compute_host))

    def verify(self, ctx, item, snap):
        ok, message, dest = super().verify(ctx, item, snap)
        if not ok:
            return ok, message, dest
        srv = snap.elsewhere(item.id)
        if srv is None:
            srv = ctx.api(ctx.compute.get_server, item.id)
        wanted = self._wanted(item)
        if srv.status != wanted:
            return False, 'is %s, expected %s' % (srv.status, wanted), dest
        notes = []
        if item.data.get('earlier'):
            notes.append(item.data['earlier'])
        if item.data.get('starts'):
            notes.append('started again (it was running)')
        if item.status_before == 'ERROR':
            notes.append('was ERROR on the dead host')
        return True, '; '.join(notes), dest


EVACUATE = Evacuate()


class RecoverPoller(engine.HostPoller):
    """The engine's host poller, plus the servers on the hosts that the
    host's evacuations went to (one list call per destination host, not
    per server): ``snap.elsewhere(server_id)``."""

    def __init__(self, compute, host, features=None, since=None,
                 extra_hosts=()):
        super().__init__(compute, host, features, since=since)
        self.extra_hosts = [h for h in extra_hosts if h and h != host]

    def other_hosts(self, migrations):
        dests = set(self.extra_hosts)
        for m in migrations:
            if (m.migration_type in (None, 'evacuation') and m.dest_compute
                    and m.dest_compute != self.host):
                dests.add(m.dest_compute)
        return dests


# ---------------------------------------------------------------- planning

def _excluded(server, exclude):
    return server.id in exclude or server.name in exclude


def plan_reboot(ctx, snap, opts):
    """S9: what to do with each server of a host that was rebooted."""
    items = []
    for srv in sorted(snap.servers.values(), key=lambda s: (s.name or '',
                                                            s.id)):
        if _excluded(srv, opts.exclude):
            items.append(engine.PlanItem(srv, reason='excluded (--exclude)',
                                         success_if_skipped=True))
            continue
        if srv.task_state:
            items.append(engine.PlanItem(srv, reason='busy: task %s' %
                                         srv.task_state))
            continue
        status = srv.status
        running = srv.power_state == engine.POWER_RUNNING
        if status == 'ACTIVE' and running:
            items.append(engine.PlanItem(srv, reason='already running',
                                         success_if_skipped=True))
        elif status == 'ACTIVE':
            items.append(engine.PlanItem(
                srv, HARD_REBOOT if opts.hard else REBOOT,
                reason='ACTIVE but power state %s' % srv.power_state))
        elif status == 'SHUTOFF':
            purpose, why = (False, '--all')
            if not opts.all:
                purpose, why = stopped_on_purpose(ctx.compute, srv)
            if purpose:
                items.append(engine.PlanItem(srv, reason=why,
                                             success_if_skipped=True))
            else:
                items.append(engine.PlanItem(
                    srv, HARD_REBOOT if opts.hard else START, reason=why))
        elif status == 'ERROR':
            items.append(engine.PlanItem(
                srv, HARD_REBOOT, reason='ERROR: hard reboot (re-creates '
                'the guest from its definition)'))
        elif status == 'PAUSED':
            items.append(_plan_paused(ctx, srv))
        elif status in LEFT_ALONE:
            items.append(engine.PlanItem(srv, reason=LEFT_ALONE[status],
                                         success_if_skipped=True))
        else:
            items.append(engine.PlanItem(srv, reason=BUSY.get(
                status, '%s: not handled' % status)))
    return items


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


def plan_dead(ctx, snap, opts):
    """S19/S20: evacuate every server of the dead host."""
    items = []
    for srv in sorted(snap.servers.values(), key=lambda s: (s.name or '',
                                                            s.id)):
        if _excluded(srv, opts.exclude):
            items.append(engine.PlanItem(srv, reason='excluded (--exclude)',
                                         success_if_skipped=True))
            continue
        m = snap.in_progress(srv.id, ('evacuation',))
        if m is not None:
            item = engine.PlanItem(srv, EVACUATE, adopt=True,
                                   migration_id=m.id)
            item.last_migration = m
            items.append(item)
            continue
        if srv.status in ('ACTIVE', 'SHUTOFF', 'ERROR'):
            items.append(engine.PlanItem(srv, EVACUATE))
        elif srv.status in LEFT_ALONE:
            items.append(engine.PlanItem(srv, reason=LEFT_ALONE[
                srv.status] + '; nova cannot evacuate it'))
        else:
            items.append(engine.PlanItem(srv, reason=BUSY.get(
                srv.status, '%s: nova cannot evacuate it' % srv.status)))
    return items + plan_evacuated_earlier(ctx, snap, opts)


def plan_evacuated_earlier(ctx, snap, opts):
    """A rerun after an interrupted ``--dead``: servers nova already
    evacuated from this host (their newest evacuation record from it is
    ``done``: the host has not come back since) that are still SHUTOFF
    (2.95 delivers them stopped).  The ones that were running before the
    evacuation (instance actions, as for stopped servers) are started and
    verified by the evacuation's own checks; the ones their owner had
    stopped are left stopped."""
    items = []
    found = [snap.elsewhere(sid) for sid in snap.migrated_server_ids()]
    for srv in sorted((s for s in found if s is not None),
                      key=lambda s: (s.name or '', s.id)):
        evacuations = [m for m in snap.migrations(srv.id)
                       if m.migration_type == 'evacuation'
                       and m.source_compute == snap.host]
        if (not evacuations or evacuations[-1].status != 'done'
                or srv.status != 'SHUTOFF' or srv.task_state
                or srv.compute_host == snap.host):
            continue
        m = evacuations[-1]
        earlier = 'evacuated by an earlier run (migration %s)' % m.id
        if _excluded(srv, opts.exclude):
            items.append(engine.PlanItem(
                srv, reason='%s; excluded (--exclude)' % earlier,
                source=snap.host, success_if_skipped=True))
            continue
        purpose, why = stopped_on_purpose(ctx.compute, srv,
                                          ignore=('evacuate',))
        if purpose:
            items.append(engine.PlanItem(
                srv, reason='%s; %s; left stopped' % (earlier, why),
                source=snap.host, success_if_skipped=True))
            continue
        item = engine.PlanItem(srv, EVACUATE, adopt=True, migration_id=m.id,
                               source=snap.host)
        item.last_migration = m
        item.destination = m.dest_compute
        item.data['wanted'] = 'ACTIVE'
        item.data['earlier'] = earlier
        items.append(item)
    return items


# ------------------------------------------------------- nova's reasons

# How far nova's clock may be behind ours when telling our own instance
# actions from older ones.
CLOCK_SKEW = datetime.timedelta(minutes=2)
FAILED_RESULTS = (engine.FAILED, engine.TIMEOUT)


def _fault_message(server):
    fault = getattr(server, 'fault', None)
    if isinstance(fault, dict):
        fault = fault.get('message')
    return ' '.join(str(fault).split()) if fault else None


def nova_reasons(ctx, server_id, since):
    """What nova says went wrong with a server: its fault (shown while it
    is in ERROR) and the failed event of its newest instance action started
    after ``since`` (e.g. ``compute_rebuild_instance``), as phrases."""
    notes = []
    srv = ctx.api(ctx.compute.get_server, server_id)
    fault = _fault_message(srv)
    if fault:
        notes.append('nova fault: %s' % fault)
    actions = sorted(ctx.api(lambda: list(ctx.compute.server_actions(
        server_id))), key=_action_time, reverse=True)
    for action in actions[:3]:
        if _action_time(action) < since:
            break
        detail = ctx.api(ctx.compute.get_server_action, action.request_id,
                         server_id)
        for ev in getattr(detail, 'events', None) or ():
            if (ev.result or '').lower() != 'error':
                continue
            why = ' '.join(str(ev.details or '').split())
            notes.append('instance action %s: event %s failed%s' % (
                action.action, ev.event,
                ': %s' % why if why and why != fault else ''))
            return notes
    return notes


def explain_failures(ctx, items, started):
    """Add nova's reasons to every failed (or timed-out) row: one GET of
    the server and of its instance actions per such row, after the run."""
    since = started - CLOCK_SKEW
    for item in items:
        if item.result not in FAILED_RESULTS or item.server is None:
            continue
        try:
            notes = nova_reasons(ctx, item.id, since)
        except Exception as exc:
            notes = ['nova\'s reason not read: %s' % engine.describe(exc)]
        text = item.message or item.reason or ''
        notes = [n for n in notes if n.split(': ', 1)[-1] not in text]
        if notes:
            item.message = '; '.join([text] + notes if text else notes)


# ---------------------------------------------------------------- running

def make_context(compute, host, features, opts, events, target=None,
                 block_storage=None):
    return engine.Context(
        compute, host, features=features, target_host=target,
        options={'timeout': opts.timeout, 'block_storage': block_storage},
        events=events)


def make_executor(ctx, poller, opts, **kwargs):
    # recover-all has no --on-timeout: a start or reboot that times out is
    # escalated by the action itself, an evacuation is aborted.
    return engine.Executor.from_options(ctx, poller, opts,
                                        on_timeout='abort', **kwargs)


def run(conn, request, events=None, executor_kwargs=None):
    """``server recover-all HOST``: validate, then bring the servers back.

    Reboot mode, dead mode with evacuate, or (``via_db``) the legacy DB
    path of ``ops.dbmove``.  Returns a :class:`Report`; raises an
    ``errors.NodeOpsError`` before anything is changed when the request
    cannot be done.
    """
    if not request.host:
        raise errors.UsageError('a host is required (or --undo JOURNAL)')
    validate(request)
    held = None
    if not (request.dry_run or (request.via_db and not request.execute)):
        # The host's lease (ops/lease.py): refused while another live run
        # holds it; checked again before each server.
        from osc_nodeops.ops import lease
        held = lease.Lease(conn.compute, request.host, kind='recover-all',
                           break_lease=request.break_lease,
                           events=events).acquire()
        executor_kwargs = dict(executor_kwargs or {}, guard=held.check)
    try:
        if request.via_db:
            from osc_nodeops.ops import dbmove
            return dbmove.recover_via_db(conn, request.host, request,
                                         events=events,
                                         executor_kwargs=executor_kwargs)
        return recover_host(conn, request.host, request, events=events,
                            executor_kwargs=executor_kwargs)
    finally:
        if held is not None:
            held.release()


def recover_host(conn, host, opts, features=None, events=None,
                 executor_kwargs=None):
    """Reboot mode (S9/S10) or dead mode with evacuate (S19-S20, S22)."""
    compute = conn.compute
    validate(opts, host)
    features = features or engine.Features.from_proxy(compute)
    service, note, fenced = check_host(compute, host, opts,
                                       force_down=not opts.dry_run)
    ctx = make_context(compute, host, features, opts, events,
                       target=opts.target_host,
                       block_storage=getattr(conn, 'block_storage', None))
    ctx.emit('service', note)
    since = timeutil.utcnow() - datetime.timedelta(hours=1)
    if opts.dead:
        poller: engine.HostPoller = RecoverPoller(
            compute, host, features, since=since,
            extra_hosts=[opts.target_host])
    else:
        poller = engine.HostPoller(compute, host, features, since=since)
    snap = engine.call_with_retry(lambda: poller.snapshot(full=True))
    items = (plan_dead if opts.dead else plan_reboot)(ctx, snap, opts)
    if isinstance(poller, RecoverPoller):
        # --dead: keep watching where earlier evacuations went
        poller.extra_hosts += sorted({
            i.last_migration.dest_compute for i in items
            if i.adopt and i.last_migration is not None
            and i.last_migration.dest_compute} - set(poller.extra_hosts))
    acting = sum(1 for i in items if i.action)
    ctx.emit('plan', '%s: %d server(s), %d to %s, %d left as they are' % (
        host, len(items), acting, 'evacuate' if opts.dead else 'bring back',
        len(items) - acting))
    report = Report(host, items, notes=[note])
    if fenced is not None:  # the dead host, disabled before any evacuation
        report.items = [fencing.disable_dead_host(
            ctx, host, fenced, opts.dry_run)] + items
    if opts.dry_run:
        engine.settle(items, True)
        report.ok = all(i.action or i.success_if_skipped for i in items)
        return report
    executor = make_executor(ctx, poller, opts, **(executor_kwargs or {}))
    started = timeutil.utcnow()
    executor.run(items, initial_snapshot=snap)
    engine.settle(items, False)
    report.interrupted = executor.interrupted
    if opts.reattach_volumes and not report.interrupted:
        report.items += reattach(
            ctx, [i for i in items if i.ok], opts, features,
            executor_kwargs=executor_kwargs)
    explain_failures(ctx, report.items, started)
    report.ok = not report.interrupted and all(
        i.ok for i in report.items)
    done = sum(1 for i in items if i.ok and i.action)
    ctx.emit('done', '%s: %d brought back, %d not' % (
        host, done, sum(1 for i in report.items if not i.ok)))
    return report


# Volumes (S18) live in ops/volumes.py; imported here to keep one entry.
def reattach(ctx, items, opts, features, executor_kwargs=None):
    from osc_nodeops.ops import volumes
    return volumes.reattach_items(ctx, items, opts, features,
                                  executor_kwargs=executor_kwargs)
