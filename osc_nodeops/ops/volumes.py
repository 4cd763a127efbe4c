"""Volumes of a host's servers: list the pairs (S17), re-attach them (S18).

``list_pairs`` asks the APIs: the servers on the host (all projects), each
one's volume attachments from nova (device), each volume from cinder
(status) and, where nova gives the attachment ID (compute API 2.89), the
cinder attachment (attach status).  ``osc_nodeops.db.volumes`` gives the
same pairs from the databases (``--from-db``).

``Reattach`` is an engine action: detach every volume of one server,
wait until each is ``available``, attach each again at the device it had,
wait until each is ``in-use`` on that server.  It never starts on a server
that is not ACTIVE with power state running.
"""

import dataclasses

from osc_nodeops.db import volumes as db_volumes
from osc_nodeops import errors
from osc_nodeops.ops import engine

#: One instance/volume pair, from the APIs or from the databases.
Pair = db_volumes.Pair

PAIR_COLUMNS = ('Server ID', 'Server Name', 'Volume ID', 'Volume Name',
                'Device', 'Status', 'Attach Status')


def pair_row(pair):
    return (pair.server_id, pair.server_name, pair.volume_id,
            pair.volume_name, pair.device, pair.status, pair.attach_status)


def server_volumes(compute, server_id):
    """[(volume_id, device, attachment_id)] of one server, by device."""
    atts = engine.call_with_retry(
        lambda: list(compute.volume_attachments(server_id)))
    return sorted(((a.volume_id, a.device, getattr(a, 'attachment_id', None))
                   for a in atts), key=lambda t: (t[1] or '', t[0]))


def _attach_status(block_storage, volume, server_id, attachment_id):
    if attachment_id:
        try:
            att = engine.call_with_retry(
                lambda: block_storage.get_attachment(attachment_id))
            return att.status
        except Exception:
            pass
    for a in volume.attachments or ():
        if a.get('server_id') == server_id:
            return 'attached'
    return 'detached'


@dataclasses.dataclass
class Request(object):
    """``compute node volumes``; ``nova_db`` / ``cinder_db`` are
    ``dbmove.DBSource`` (``--from-db``)."""

    host: str
    from_db: bool = False
    nova_db: object = None
    cinder_db: object = None


def run(conn, request):
    """``compute node volumes``: the pairs of ``request.host`` (a list of
    :class:`Pair`), through the APIs or (``from_db``) the databases."""
    if not (request.host or '').strip():
        raise errors.UsageError('the host name is empty')
    if request.from_db:
        return db_volumes.list_pairs(request.nova_db.resolve(),
                                     request.cinder_db.resolve(),
                                     request.host)
    engine.find_compute_service(conn.compute, request.host, errors.NotFound)
    return list_pairs(conn, request.host)


def list_pairs(conn, host):
    """The instance/volume pairs of ``host`` through the APIs."""
    compute = conn.compute
    block_storage = conn.block_storage
    servers = engine.call_with_retry(lambda: list(compute.servers(
        details=True, all_projects=True, compute_host=host)))
    pairs = []
    for srv in sorted(servers, key=lambda s: s.id):
        for volume_id, device, att_id in server_volumes(compute, srv.id):
            vol = engine.call_with_retry(
                lambda: block_storage.get_volume(volume_id))
            pairs.append(Pair(srv.id, srv.name, volume_id, device,
                              vol.status,
                              _attach_status(block_storage, vol, srv.id,
                                             att_id),
                              vol.name, host))
    return pairs


# ------------------------------------------------------------- re-attach

class VolumeSnapshot(engine.Snapshot):
    """A poll of the host's servers' volumes: ``volumes`` maps a volume
    ID to cinder's record."""

    def __init__(self, host, volumes):
        super().__init__(host, [], [])
        self.volumes = volumes


class VolumePoller(object):
    """One volume list (all projects) per snapshot, for every server."""

    def __init__(self, block_storage, host, volume_ids):
        self.block_storage = block_storage
        self.host = host
        self.volume_ids = set(volume_ids)
        self.calls = 0

    def snapshot(self, full=False):
        self.calls += 1
        vols = [v for v in self.block_storage.volumes(details=True,
                                                      all_projects=True)
                if v.id in self.volume_ids]
        return VolumeSnapshot(self.host, {v.id: v for v in vols})


def _attached_to(volume, server_id):
    for a in volume.attachments or ():
        if a.get('server_id') == server_id:
            return a
    return None


class Reattach(engine.Action):
    """S18 for one server; ``item.data['volumes']`` = [(id, device)].

    Detach every volume, wait until each is available, attach each again at
    its device.  A detach refused after others went through is undone
    (issue 11 item 6): the volumes already detached are attached again and
    the row says so; a server is never left with fewer volumes than it had.
    An attach that fails is tried again (``attach_tries`` in all).
    """

    name = 'reattach'
    success = 'reattached'
    attach_tries = 3

    def issue(self, ctx, item):
        srv = ctx.compute.get_server(item.id)
        if srv.status != 'ACTIVE' or srv.power_state != engine.POWER_RUNNING:
            item.data['not_up'] = '%s, power state %s' % (srv.status,
                                                          srv.power_state)
            return
        item.data.pop('not_up', None)
        item.data['phase'] = 'detach'
        item.data['attach_calls'] = 0
        detached: list = []
        item.data['detached'] = detached
        for volume_id, _device in item.data['volumes']:
            try:
                ctx.compute.delete_volume_attachment(item.id, volume_id,
                                                     ignore_missing=False)
            except Exception as exc:
                if not detached:
                    raise  # nothing changed yet: a plain refusal
                item.data['phase'] = 'undo'
                item.data['undo_reason'] = 'detaching %s failed (%s)' % (
                    volume_id, engine.describe(exc))
                return
            detached.append(volume_id)

    def _attach(self, ctx, item, volume_ids):
        item.data['attach_calls'] = item.data.get('attach_calls', 0) + 1
        devices = dict(item.data['volumes'])
        for volume_id in volume_ids:
            ctx.compute.create_volume_attachment(
                item.id, volume_id, device=devices.get(volume_id))

    def progress(self, ctx, item, snap):
        if item.data.get('not_up'):
            return engine.Check(engine.FATAL, 'not up (%s): volumes left '
                                'attached as they were' % item.data['not_up'])
        vols = snap.volumes
        wanted = [v for v, _ in item.data['volumes']]
        missing = [v for v in wanted if v not in vols]
        if missing:
            return engine.Check(engine.FATAL, 'volume(s) %s vanished' %
                                ', '.join(missing))
        states = {v: vols[v].status for v in wanted}
        bad = [s for s in states.values() if s.startswith('error')]
        if bad:
            return engine.Check(engine.FATAL, 'volume status %s' % bad[0])
        listing = ', '.join(states[v] for v in wanted)
        phase = item.data['phase']
        if phase == 'detach':
            if all(s == 'available' for s in states.values()):
                item.data['phase'] = 'attach'
                return engine.Check(engine.CALL, 'attach again',
                                    call=lambda: self._attach(ctx, item,
                                                              wanted))
            return engine.Check(engine.PENDING, 'detaching: %s' % listing)
        # attach, or undo a partial detach: attach whatever is available
        # until every volume is in use by the server again.
        if all(states[v] == 'in-use' and _attached_to(vols[v], item.id)
               for v in wanted):
            if phase == 'undo':
                return engine.Check(engine.FATAL, '%s; re-attached %s: the '
                                    'server has all its volumes again' % (
                                        item.data['undo_reason'], ', '.join(
                                            item.data['detached'])))
            return engine.Check(engine.COMPLETE, 'in-use')
        available = [v for v in wanted if states[v] == 'available']
        moving = [v for v in wanted if states[v] in (
            'detaching', 'attaching', 'reserved')]
        if available and not moving:
            if item.data.get('attach_calls', 0) >= self.attach_tries:
                return engine.Check(engine.FATAL, 'attaching %s failed %d '
                                    'times: left detached (attach by hand: '
                                    'openstack server add volume)' % (
                                        ', '.join(available),
                                        self.attach_tries))
            what = 'attach again' if phase == 'attach' else (
                'undo: attach again %s' % ', '.join(available))
            return engine.Check(engine.CALL, what,
                                call=lambda: self._attach(ctx, item,
                                                          available))
        return engine.Check(engine.PENDING, '%s: %s' % (
            'attaching' if phase == 'attach' else 'undoing', listing))

    def verify(self, ctx, item, snap):
        notes = []
        for volume_id, device in item.data['volumes']:
            vol = snap.volumes[volume_id]
            att = _attached_to(vol, item.id)
            if vol.status != 'in-use' or att is None:
                return False, 'volume %s is %s' % (volume_id,
                                                   vol.status), None
            if device and att.get('device') != device:
                # libvirt may ignore the requested name; say so.
                notes.append('%s at %s (was %s)' % (
                    volume_id, att.get('device'), device))
        msg = '%d volume(s) in-use again' % len(item.data['volumes'])
        if notes:
            msg += '; device changed: ' + ', '.join(notes)
        return True, msg, None


REATTACH = Reattach()


def reattach_items(ctx, items, opts, features, executor_kwargs=None):
    """Plan and run Reattach for the servers of ``items`` that are up.

    Returns the new items (method ``reattach``), one per server with
    volumes.  Servers without volumes get no row.
    """
    block_storage = ctx.options.get('block_storage')
    out = []
    for item in items:
        srv = ctx.api(ctx.compute.get_server, item.id)
        vols = [(v, d) for v, d, _ in server_volumes(ctx.compute, item.id)]
        if not vols:
            continue
        new = engine.PlanItem(srv, REATTACH, source=srv.compute_host)
        new.data['volumes'] = vols
        if srv.status != 'ACTIVE' or srv.power_state != engine.POWER_RUNNING:
            new.action = None
            new.reason = ('not up (%s): volumes not touched' % srv.status)
        out.append(new)
    todo = [i for i in out if i.action]
    if todo and not opts.dry_run:
        ids = [v for i in todo for v, _ in i.data['volumes']]
        poller = VolumePoller(block_storage, ctx.host, ids)
        executor = engine.Executor(
            ctx, poller, max_parallel=opts.max_parallel,
            poll_interval=opts.poll_interval, timeout=opts.timeout,
            on_timeout='leave', retries=0,
            **(executor_kwargs or {}))
        ctx.emit('plan', 're-attaching the volumes of %d server(s)' %
                 len(todo))
        executor.run(todo)
    for i in out:
        if i.result is None:
            i.result = engine.PLANNED if (opts.dry_run and i.action) \
                else engine.SKIPPED
    return out
