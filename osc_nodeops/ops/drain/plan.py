"""S2 / S7: one ``engine.PlanItem`` per server: a move or a skip reason.

``plan_drain`` (the servers on the host, and our moves to resume),
``plan_undrain`` (the servers whose trusted origin is the host),
``moved_by_stopped_run`` (rows of the moves a stopped run made).
"""

import datetime

from osc_nodeops import errors
from osc_nodeops import timeutil
from osc_nodeops.ops import engine
from osc_nodeops.ops.cloud import nova
from osc_nodeops.ops.drain import actions
from osc_nodeops.ops.drain import origin
from osc_nodeops.ops.drain import policy
from osc_nodeops.ops.engine import wave

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


def _by_name(servers):
    return sorted(servers, key=lambda s: ((s.name or ''), s.id))


# Planning is a list of small named filters per command (kubectl drain's
# makeFilters): each looks at one server and returns its PlanItem when it
# decides about it, or None to pass it on; the last decides every server
# that reaches it.  Each takes (ctx, snap, srv, opts).

def _decide(filters, ctx, snap, srv, opts):
    for decide in filters[:-1]:
        item = decide(ctx, snap, srv, opts)
        if item is not None:
            return item
    return filters[-1](ctx, snap, srv, opts)


def _skip_excluded(ctx, snap, srv, opts):
    """``--exclude`` names it: left where it is."""
    if _excluded(srv, opts.exclude):
        return engine.PlanItem(srv, reason='excluded by --exclude')
    return None


def _in_flight(ctx, snap, srv, opts):
    """A task state: a move of ours under way (adopted), else busy."""
    if not srv.task_state:
        return None
    host = snap.host
    ours = origin.drained_from(srv, host)
    method = origin.parse_marker(
        (srv.metadata or {}).get(origin.MARKER_KEY)).get('method')
    if ours and method in ('live', 'cold', 'live-suspended', 'stop-cold'):
        action = actions.action_for(method, record_origin_host=host)
        item = engine.PlanItem(srv, action, adopt=True)
        if method in ('live-suspended', 'stop-cold'):
            item.data['phase'] = 'migrate'
        if action.adopt_in_progress(item, snap):
            return item
    return engine.PlanItem(
        srv, reason='task_state %s: busy (not started by this '
        'tool)' % srv.task_state if not ours else
        'task_state %s and no migration in progress' % srv.task_state)


def _to_move(ctx, snap, srv, opts):
    """The move its status allows (or a skip), within the owner's policy,
    with the ladder a dry run shows."""
    host = snap.host
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
    return item


DRAIN_FILTERS = (_skip_excluded, _in_flight, _to_move)


def _resumed_moves(ctx, snap):
    """Moves of ours whose server already points at the destination but
    whose migration is not final: a cold migration that finished
    (VERIFY_RESIZE) but was never confirmed because the run died, or a
    move caught between the host change and the record's last update."""
    host = snap.host
    items = []
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


def plan_drain(ctx, snap, opts):
    """S2: one PlanItem per server on ``snap.host`` (``DRAIN_FILTERS``),
    then the moves of ours to resume (``_resumed_moves``)."""
    items = [_decide(DRAIN_FILTERS, ctx, snap, srv, opts)
             for srv in _by_name(snap.servers.values())]
    return items + _resumed_moves(ctx, snap)


class UndrainPoller(wave.WaveHostPoller):
    """The undrain host's poller, plus the hosts where servers being
    resumed before their move home still are (``snap.elsewhere``): a resume
    is seen there, not on the host being watched.  Its polls are views of
    ``shared`` (a ``wave.WavePoll``: the cloud's migrations, which the
    slots count, the moves home coming from any host)."""

    def __init__(self, compute, host, features=None, since=None,
                 shared=None):
        super(UndrainPoller, self).__init__(compute, host, shared, features,
                                            since=since)
        self.items: tuple = ()

    def other_hosts(self, migrations):
        return {i.source for i in self.items
                if i.data.get('phase') == 'resume' and i.source
                and i.result is None}


def _already_home(ctx, snap, srv, opts):
    """On the host, at rest: nothing to move (its record is cleared)."""
    if srv.compute_host == snap.host and not srv.task_state:
        item = engine.PlanItem(srv, reason='already on %s' % snap.host,
                               success_if_skipped=True)
        item.data['home'] = True  # its record is cleared
        return item
    return None


def _in_flight_home(ctx, snap, srv, opts):
    """A task state: a move home under way (adopted), else busy."""
    if not srv.task_state:
        return None
    m = snap.in_progress(srv.id)
    if m is not None and m.dest_compute == snap.host:
        method = ('live' if m.migration_type in
                  (None, 'live-migration') else 'cold')
        item = engine.PlanItem(srv, actions.action_for(
            method, clear_origin_after=True), adopt=True,
            migration_id=m.id, source=m.source_compute)
        item.last_migration = m
        return item
    return engine.PlanItem(srv, reason='task_state %s: busy' %
                           srv.task_state)


def _not_trusted(ctx, snap, srv, opts):
    """No admin-only record confirms our drain moved it (issue 15 item 2:
    not a failure; a stale or forged record names a move that did not
    happen, so nothing is to be undone)."""
    trusted, why = origin.trusted_origin(srv, snap.host, snap)
    if trusted:
        return None
    return engine.PlanItem(
        srv, reason='not moved: %s (the origin metadata alone is '
        'not trusted: the server\'s project can write it)' % why,
        success_if_skipped=True)


def _move_home(ctx, snap, srv, opts):
    """The move home its status allows (or a skip)."""
    method, reason = _method_for(srv, opts, ctx.features, snap.host)
    if method is None:
        return engine.PlanItem(srv, reason=reason)
    return engine.PlanItem(
        srv, actions.action_for(method, clear_origin_after=True))


UNDRAIN_FILTERS = (_already_home, _skip_excluded, _in_flight_home,
                   _not_trusted, _move_home)


def plan_undrain(ctx, snap, servers, opts):
    """S7: one PlanItem per server whose origin is ``snap.host``
    (``UNDRAIN_FILTERS``)."""
    return [_decide(UNDRAIN_FILTERS, ctx, snap, srv, opts)
            for srv in _by_name(servers)]


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
                errors.one_line(exc, style=errors.STATUS))
            ctx.emit('warning', 'recording the origin failed: %s' %
                     errors.one_line(exc, style=errors.STATUS), item)
            continue
        ctx.emit('resume', 'origin recorded (moved by the run that was '
                 'stopped: migration %s)' % origin.migration_ref(m), item)
    return items
