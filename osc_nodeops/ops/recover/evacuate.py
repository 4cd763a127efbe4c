"""``server recover-all HOST --dead`` through the API (S19, S20, S22):
evacuate every server of the dead host.

``Evacuate`` (``evacuate``)
    the migration record of type ``evacuation`` must reach ``done``, the
    server must have left the dead host, and it must come back in the power
    state it had: from compute API 2.95 nova delivers evacuated servers
    stopped, so the ones that were running are started again.
"""

from osc_nodeops.ops import engine
from osc_nodeops.ops.cloud import nova
from osc_nodeops.ops.recover.common import BUSY
from osc_nodeops.ops.recover.common import excluded
from osc_nodeops.ops.recover.common import LEFT_ALONE
from osc_nodeops.ops.recover.common import plan_each
from osc_nodeops.ops.recover.common import stopped_on_purpose


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
                wanted != 'ACTIVE' or srv.power_state == nova.POWER_RUNNING):
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
            notes.append('started (--all; it was SHUTOFF)'
                         if item.data.get('all') else
                         'started again (it was running)')
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

def plan_dead(ctx, snap, opts):
    """S19/S20: evacuate every server of the dead host."""
    return plan_each(snap, opts.exclude, lambda srv: _plan_evacuation(
        snap, opts, srv)) + plan_evacuated_earlier(ctx, snap, opts)


def _plan_evacuation(snap, opts, srv):
    m = snap.in_progress(srv.id, ('evacuation',))
    if m is not None:
        item = engine.PlanItem(srv, EVACUATE, adopt=True,
                               migration_id=m.id)
        item.last_migration = m
        return item
    if srv.status in ('ACTIVE', 'SHUTOFF', 'ERROR'):
        item = engine.PlanItem(srv, EVACUATE)
        if opts.all and srv.status == 'SHUTOFF':
            item.data['wanted'] = 'ACTIVE'  # --all: started there
            item.data['all'] = True
        return item
    if srv.status in LEFT_ALONE:
        return engine.PlanItem(srv, reason=LEFT_ALONE[
            srv.status] + '; nova cannot evacuate it')
    return engine.PlanItem(srv, reason=BUSY.get(
        srv.status, '%s: nova cannot evacuate it' % srv.status))


def plan_evacuated_earlier(ctx, snap, opts):
    """A rerun after an interrupted ``--dead``: servers nova already
    evacuated from this host (their newest evacuation record from it is
    ``done``: the host has not come back since) that are still SHUTOFF
    (2.95 delivers them stopped).  The ones that were running before the
    evacuation (instance actions, as for stopped servers) are started and
    verified by the evacuation's own checks; the ones their owner had
    stopped are left stopped (``--all`` starts them too)."""
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
        if excluded(srv, opts.exclude):
            items.append(engine.PlanItem(
                srv, reason='%s; excluded (--exclude)' % earlier,
                source=snap.host, success_if_skipped=True))
            continue
        purpose, why = (False, '--all') if opts.all else stopped_on_purpose(
            ctx.compute, srv, ignore=('evacuate',))
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
