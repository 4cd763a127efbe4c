"""What the modes of ``server recover-all`` share: the request
(``Options``), the ``Report``, the service checks, "stopped on purpose",
nova's reasons for a failure, the engine context and executor, and the
volume re-attach (S18).

The modes (``reboot``, ``evacuate``, ``via_db``) import this module; a mode
imports no other mode's module except ``via_db``, which hard reboots with
``reboot.HARD_REBOOT``; nothing here imports the package's ``__init__``.
"""

import dataclasses
import datetime

from osc_nodeops import errors
from osc_nodeops import timeutil
from osc_nodeops.ops import engine
from osc_nodeops.ops import fencing
from osc_nodeops.ops import runtime
from osc_nodeops.ops import volumes
from osc_nodeops.ops.cloud import calls
from osc_nodeops.ops.cloud import nova

COMPUTE_BINARY = nova.COMPUTE_BINARY
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
class Options(engine.ExecutorOptions):
    """The request of ``server recover-all``: what the command line says
    (the executor's options, with a timeout of 300 s and 2 s between
    attempts).

    ``nova_db`` / ``neutron_db`` (``--via-db``) are ``via_db.DBSource``;
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
    timeout: float = 300.0
    retry_delay: float = 2.0
    exclude: tuple = ()
    nova_db: object = None
    neutron_db: object = None
    journal: str | None = None
    break_lease: bool = False


@dataclasses.dataclass
class Report(runtime.Report):
    host: str
    items: list
    notes: list = dataclasses.field(default_factory=list)
    ok: bool = True
    interrupted: bool = False
    journal: str | None = None


# --------------------------------------------------------------- services

def compute_service(compute, host):
    """The nova-compute service of ``host``; ``errors.NotFound`` if none."""
    return nova.find_compute_service(compute, host, errors.NotFound)


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
    calls.call_with_retry(lambda: compute.update_service_forced_down(
        service, host=host, binary=COMPUTE_BINARY, forced=True))
    return service, ('nova-compute on %s forced down (%s)' % (
        host, fenced.note)), fenced


# ------------------------------------------------------ stopped on purpose

def action_time(action):
    return timeutil.parse_time(action.start_time) or timeutil.EPOCH


def stopped_on_purpose(compute, server, ignore=()):
    """(True, why) if the owner (a user) stopped this server on purpose.

    ``ignore``: power actions to look through (``evacuate``: what the
    owner wanted before the evacuation)."""
    actions = list(calls.call_with_retry(
        lambda: list(compute.server_actions(server.id))))
    actions.sort(key=action_time, reverse=True)
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


# ---------------------------------------------------------------- planning

def excluded(server, exclude):
    return server.id in exclude or server.name in exclude


def plan_each(snap, exclude, plan_one):
    """A ``PlanItem`` for every server of ``snap``, by name then ID: a
    skip that is no failure for one ``--exclude`` names, else
    ``plan_one(server)``."""
    return [engine.PlanItem(srv, reason='excluded (--exclude)',
                            success_if_skipped=True)
            if excluded(srv, exclude) else plan_one(srv)
            for srv in sorted(snap.servers.values(),
                              key=lambda s: (s.name or '', s.id))]


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
        server_id))), key=action_time, reverse=True)
    for action in actions[:3]:
        if action_time(action) < since:
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
            notes = ['nova\'s reason not read: %s' % errors.one_line(
                exc, style=errors.STATUS)]
        text = item.message or item.reason or ''
        notes = [n for n in notes if n.split(': ', 1)[-1] not in text]
        if notes:
            item.message = '; '.join([text] + notes if text else notes)


# ---------------------------------------------------------------- running

def make_context(conn, host, features, opts, events, runtime, target=None):
    return engine.Context(
        conn.compute, host, features=features, target_host=target,
        options={'timeout': opts.timeout,
                 'block_storage': getattr(conn, 'block_storage', None)},
        events=events, runtime=runtime)


def make_executor(ctx, poller, opts, **kwargs):
    # recover-all has no --on-timeout: a start or reboot that times out is
    # escalated by the action itself, an evacuation is aborted.
    return engine.Executor.from_options(ctx, poller, opts,
                                        on_timeout='abort', **kwargs)


# Volumes (S18) live in ops/volumes.py.
def reattach(ctx, items, opts, features, guard=None):
    return volumes.reattach_items(ctx, items, opts, features, guard=guard)
