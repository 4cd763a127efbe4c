"""S2 / S7: one ``engine.PlanItem`` per server: a move or a skip reason.

``plan_drain`` (the servers on the host, and our moves to resume),
``plan_undrain`` (the servers whose trusted origin is the host),
``moved_by_stopped_run`` (rows of the moves a stopped run made).
"""

import datetime

from osc_nodeops import timeutil
from osc_nodeops.ops import engine
from osc_nodeops.ops.cloud import calls
from osc_nodeops.ops.cloud import nova
from osc_nodeops.ops.drain import actions
from osc_nodeops.ops.drain import origin
from osc_nodeops.ops.drain import policy

LIVE_STATES = ('ACTIVE', 'PAUSED')
COLD_STATES = ('SHUTOFF',)

SKIP_REASONS = {
    'ERROR': 'ERROR: nova cannot move a server in error; repair it or reset '
             'its state first',
    'SHELVED': 'SHELVED: not running on the host; offload it '
               '(server shelve --offload) to free the host',
    'SHELVED_OFFLOADED': 'SHELVED_OFFLOADED: has no host',
    'SUSPENDED': 'SUSPENDED: nova cannot migrate a suspended server '
                 '(--move-suspended resumes, moves and suspends it again)',
    'RESCUE': 'RESCUE: unrescue it first',
    'VERIFY_RESIZE': 'VERIFY_RESIZE: a resize/migration awaits '
                     'confirmation; confirm or revert it first',
    'BUILD': 'BUILD: still being built',
    'MIGRATING': 'MIGRATING: a migration is already in progress',
    'RESIZE': 'RESIZE: a resize is in progress',
    'REBUILD': 'REBUILD: a rebuild is in progress',
    'SOFT_DELETED': 'SOFT_DELETED: restore or delete it first',
}


def _method_for(server, opts, features, target):
    """(method, None) or (None, skip reason) for a server's status."""
    status = server.status
    if status in LIVE_STATES:
        method = 'live'
    elif status in COLD_STATES:
        method = 'cold'
    elif status == 'SUSPENDED' and opts.move_suspended:
        method = 'live-suspended'
    else:
        return None, SKIP_REASONS.get(
            status, '%s: nova cannot move a server in this state' % status)
    if target and method != 'cold' and not features.live_host_without_force:
        return None, ('a live migration to a named host needs compute API '
                      '2.30 (the cloud offers %s)' % features.effective)
    if target and method == 'cold' and not features.cold_migrate_host:
        return None, ('a cold migration to a named host needs compute API '
                      '2.56 (the cloud offers %s)' % features.effective)
    return method, None


def _excluded(server, exclude):
    return server.id in exclude or (server.name and server.name in exclude)


def plan_drain(ctx, snap, opts):
    """S2: one PlanItem per server on ``snap.host`` (and resumed moves)."""
    host = snap.host
    items = []
    for srv in sorted(snap.servers.values(),
                      key=lambda s: ((s.name or ''), s.id)):
        if _excluded(srv, opts.exclude):
            items.append(engine.PlanItem(srv, reason='excluded by --exclude'))
            continue
        if srv.task_state:
            ours = origin.drained_from(srv, host)
            method = origin.parse_marker(
                (srv.metadata or {}).get(origin.MARKER_KEY)).get('method')
            if ours and method in ('live', 'cold', 'live-suspended',
                                   'stop-cold'):
                action = actions.action_for(method, record_origin_host=host)
                item = engine.PlanItem(srv, action, adopt=True)
                if method in ('live-suspended', 'stop-cold'):
                    item.data['phase'] = 'migrate'
                if action.adopt_in_progress(item, snap):
                    items.append(item)
                    continue
            items.append(engine.PlanItem(
                srv, reason='task_state %s: busy (not started by this '
                'tool)' % srv.task_state if not ours else
                'task_state %s and no migration in progress' % srv.task_state))
            continue
        method, reason = _method_for(srv, opts, ctx.features, ctx.target_host)
        if method == 'cold' and origin.drained_from(srv, host) and \
                origin.parse_marker((srv.metadata or {}).get(
                    origin.MARKER_KEY)).get('method') == 'stop-cold':
            # Stopped by a run that died before it moved it: move it and
            # start it again, as that run would have.
            method = 'stop-cold'
        if method is None:
            item = engine.PlanItem(srv, reason=reason)
        else:
            item = engine.PlanItem(srv, actions.action_for(
                method, record_origin_host=host))
            if method == 'stop-cold':
                item.data['phase'] = 'stopped'
        policy.apply_policy(ctx, item, opts)
        policy.plan_ladder(item, opts, engine.parse_ladder(opts.on_timeout))
        items.append(item)
    # Resume: moves of ours whose server already points at the destination
    # but whose migration is not final: a cold migration that finished
    # (VERIFY_RESIZE) but was never confirmed because the run died, or a
    # move caught between the host change and the record's last update.
    seen = set(snap.servers)
    for srv_id in snap.migrated_server_ids():
        if srv_id in seen:
            continue
        for m in reversed(snap.migrations(srv_id)):
            if (m.source_compute != host or m.status in
                    nova.MIGRATION_FINAL or m.migration_type not in (
                        None, 'migration', 'live-migration')):
                continue
            srv = ctx.api(ctx.compute.get_server, srv_id)
            if origin.drained_from(srv, host):
                method = ('live' if m.migration_type == 'live-migration'
                          else 'cold')
                item = engine.PlanItem(srv, actions.action_for(
                    method, record_origin_host=host), source=host,
                    adopt=True, migration_id=m.id)
                item.last_migration = m
                items.append(item)
                seen.add(srv_id)
            break
    return items


class UndrainPoller(engine.HostPoller):
    """The undrain host's poller, plus the hosts where servers being
    resumed before their move home still are (``snap.elsewhere``): a resume
    is seen there, not on the host being watched."""

    def __init__(self, compute, host, features=None, since=None):
        super(UndrainPoller, self).__init__(compute, host, features,
                                            since=since)
        self.items: tuple = ()

    def other_hosts(self, migrations):
        return {i.source for i in self.items
                if i.data.get('phase') == 'resume' and i.source
                and i.result is None}


def plan_undrain(ctx, snap, servers, opts):
    """S7: one PlanItem per server whose origin is ``snap.host``."""
    host = snap.host
    items = []
    for srv in sorted(servers, key=lambda s: ((s.name or ''), s.id)):
        if srv.compute_host == host and not srv.task_state:
            item = engine.PlanItem(srv, reason='already on %s' % host,
                                   success_if_skipped=True)
            item.data['home'] = True  # its record is cleared
            items.append(item)
            continue
        if _excluded(srv, opts.exclude):
            items.append(engine.PlanItem(srv, reason='excluded by --exclude'))
            continue
        if srv.task_state:
            m = snap.in_progress(srv.id)
            if m is not None and m.dest_compute == host:
                method = ('live' if m.migration_type in
                          (None, 'live-migration') else 'cold')
                item = engine.PlanItem(srv, actions.action_for(
                    method, clear_origin_after=True), adopt=True,
                    migration_id=m.id, source=m.source_compute)
                item.last_migration = m
                items.append(item)
            else:
                items.append(engine.PlanItem(
                    srv, reason='task_state %s: busy' % srv.task_state))
            continue
        trusted, why = origin.trusted_origin(srv, host, snap)
        if not trusted:
            # Not a failure (issue 15 item 2): a stale or forged record
            # names a move that did not happen, so nothing is to be undone.
            items.append(engine.PlanItem(
                srv, reason='not moved: %s (the origin metadata alone is '
                'not trusted: the server\'s project can write it)' % why,
                success_if_skipped=True))
            continue
        method, reason = _method_for(srv, opts, ctx.features, host)
        if method is None:
            items.append(engine.PlanItem(srv, reason=reason))
        else:
            items.append(engine.PlanItem(
                srv, actions.action_for(method, clear_origin_after=True)))
    return items


# Clocks differ between the machine that wrote a lease and nova's.
LEASE_CLOCK_SLACK = datetime.timedelta(minutes=5)


def moved_by_stopped_run(ctx, snap, host, since):
    """The servers the run that was stopped (its lease taken over; it
    started at ``since``) moved away from ``host``: each has our intent
    marker and its newest migration, a finished move from ``host`` since
    then, to where it is now.  One GET per such server, only on a rerun
    that took a lease over.

    Each becomes a row (``engine.MOVED_EARLIER``: done, by that run); one
    the run could not give its origin record (killed between the verified
    move and the record) gets it now."""
    since = since - LEASE_CLOCK_SLACK
    on_host = set(snap.servers)
    items = []
    for srv_id in snap.migrated_server_ids():
        if srv_id in on_host:
            continue
        m = snap.migrations(srv_id)[-1]
        if (m.source_compute != host or m.status not in nova.MIGRATION_DONE
                or m.migration_type not in (None, 'live-migration',
                                            'migration')
                or (timeutil.parse_time(m.created_at) or timeutil.EPOCH)
                < since):
            continue
        srv = ctx.api(ctx.compute.get_server, srv_id)
        if (not origin.drained_from(srv, host)
                or srv.compute_host != m.dest_compute):
            continue
        method = origin.parse_marker(
            (srv.metadata or {}).get(origin.MARKER_KEY)).get('method') or (
                'live' if m.migration_type == 'live-migration' else 'cold')
        item = engine.PlanItem(srv, actions.action_for(method), source=host)
        item.last_migration = m
        item.destination = m.dest_compute
        item.result = engine.MOVED_EARLIER
        item.message = ('moved by the run that was stopped (migration %s)'
                        % origin.migration_ref(m))
        items.append(item)
        if origin.ORIGIN_KEY in (srv.metadata or {}):
            continue
        try:
            origin.record_origin(ctx, item, host, method)
        except Exception as exc:
            item.message += '; recording the origin failed: %s' % (
                calls.describe(exc))
            ctx.emit('warning', 'recording the origin failed: %s' %
                     calls.describe(exc), item)
            continue
        ctx.emit('resume', 'origin recorded (moved by the run that was '
                 'stopped: migration %s)' % origin.migration_ref(m), item)
    return items
