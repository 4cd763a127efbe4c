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

The root volume of a boot-from-volume server (the attachment at the
server's ``root_device_name``; nova refuses to detach it) is left attached
and named in the row (issue 20 item 9).

Before the first detach, what is about to be detached is recorded on the
server itself, one metadata item per volume, ``nodeops:reattach:VOLUME`` =
device (issue 21 item 7): written in one call and durable once nova has
answered, read by whoever reruns from any machine, removed once the volume
is in use by the server again.  A rerun attaches a recorded volume that is
detached.  Server metadata is writable by the server's owner, so a record
is only a hint: it never attaches a volume of another project or one in
use elsewhere.
"""

import dataclasses
import re

from osc_nodeops import errors
from osc_nodeops.db import volumes as db_volumes
from osc_nodeops.ops import engine
from osc_nodeops.ops.cloud import calls
from osc_nodeops.ops.cloud import nova

#: One instance/volume pair, from the APIs or from the databases.
Pair = db_volumes.Pair

PAIR_COLUMNS = ('Server ID', 'Server Name', 'Volume ID', 'Volume Name',
                'Device', 'Status', 'Attach Status')


def pair_row(pair):
    return (pair.server_id, pair.server_name, pair.volume_id,
            pair.volume_name, pair.device, pair.status, pair.attach_status)


def server_volumes(compute, server_id):
    """[(volume_id, device, attachment_id)] of one server, by device."""
    atts = calls.call_with_retry(
        lambda: list(compute.volume_attachments(server_id)))
    return sorted(((a.volume_id, a.device, getattr(a, 'attachment_id', None))
                   for a in atts), key=lambda t: (t[1] or '', t[0]))


# ----------------------------------------------------- root and record

#: Metadata key prefix of the re-attach record; the volume ID follows.
RECORD = 'nodeops:reattach:'
_VOLUME_ID = re.compile(r'[0-9A-Za-z-]{1,64}')
_DEVICE = re.compile(r'/dev/[0-9A-Za-z]{1,32}')
#: Device value of a record when nova gave the attachment none.
NO_DEVICE = 'auto'


def recorded(server):
    """{volume ID: device or None}: the server's re-attach record."""
    out = {}
    for key, value in (getattr(server, 'metadata', None) or {}).items():
        vid = key[len(RECORD):] if key.startswith(RECORD) else ''
        if _VOLUME_ID.fullmatch(vid):
            out[vid] = value if isinstance(value, str) and \
                _DEVICE.fullmatch(value) else None
    return out


def record_of(volumes):
    """The metadata items recording ``volumes`` [(id, device)]."""
    return {RECORD + v: (d if d and _DEVICE.fullmatch(d) else NO_DEVICE)
            for v, d in volumes}


def _dev(name):
    return (name or '').rsplit('/', 1)[-1]


#: ``root_volume`` of a volume-backed server whose root device is unknown.
UNKNOWN = object()


def root_volume(server, attached):
    """(volume ID, device) of ``server``'s root volume among ``attached``
    [(id, device)]; None for an image-backed server; ``UNKNOWN`` when it
    is volume-backed but nova shows no root device name."""
    root = getattr(server, 'root_device_name', None)
    for vid, device in attached:
        if root and device and _dev(device) == _dev(root):
            return vid, device
    image = getattr(server, 'image', None)
    image_id = image.get('id') if isinstance(image, dict) else image
    if not image_id and not root:
        return UNKNOWN
    return None


def _attach_status(block_storage, volume, server_id, attachment_id):
    if attachment_id:
        try:
            att = calls.call_with_retry(
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
    ``recover.DBSource`` (``--from-db``)."""

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
    nova.find_compute_service(conn.compute, request.host, errors.NotFound)
    return list_pairs(conn, request.host)


def list_pairs(conn, host):
    """The instance/volume pairs of ``host`` through the APIs."""
    compute = conn.compute
    block_storage = conn.block_storage
    servers = calls.call_with_retry(lambda: list(compute.servers(
        details=True, all_projects=True, compute_host=host)))
    pairs = []
    for srv in sorted(servers, key=lambda s: s.id):
        for volume_id, device, att_id in server_volumes(compute, srv.id):
            vol = calls.call_with_retry(
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

    def snapshot(self, full=False, fresh=True):
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


class NotRecorded(RuntimeError):
    """The record could not be written: nothing was detached."""


class Reattach(engine.Action):
    """S18 for one server; ``item.data['volumes']`` = [(id, device)] the
    server has at the end, ``item.data['attached']`` the IDs to detach
    first (the others are detached already: recorded by a run that
    stopped), ``item.data['root']`` its root volume, never detached.

    Record, detach every volume, wait until each is available, attach each
    again at its device.  A detach refused after others went through is
    undone (issue 11 item 6): the volumes already detached are attached
    again and the row says so; a server is never left with fewer volumes
    than it had.  An attach that fails is tried again (``attach_tries`` in
    all).
    """

    name = 'reattach'
    success = 'reattached'
    attach_tries = 3

    def issue(self, ctx, item):
        srv = ctx.compute.get_server(item.id)
        if srv.status != 'ACTIVE' or srv.power_state != nova.POWER_RUNNING:
            item.data['not_up'] = '%s, power state %s' % (srv.status,
                                                          srv.power_state)
            return
        item.data.pop('not_up', None)
        # The durable record first (issue 21 item 7): a run stopped from
        # here on leaves it for the rerun.
        try:
            ctx.api(ctx.compute.set_server_metadata, item.id,
                    **record_of(item.data['volumes']))
        except Exception as exc:
            raise NotRecorded('could not record the volumes on the server '
                              'before detaching them (%s): nothing '
                              'detached' % errors.one_line(
                                  exc, style=errors.STATUS))
        item.data['phase'] = 'detach'
        item.data['attach_calls'] = 0
        detached: list = []
        item.data['detached'] = detached
        for volume_id in item.data['attached']:
            try:
                ctx.compute.delete_volume_attachment(item.id, volume_id,
                                                     ignore_missing=False)
            except Exception as exc:
                if not detached:
                    raise  # nothing changed yet: a plain refusal
                item.data['phase'] = 'undo'
                item.data['undo_reason'] = 'detaching %s failed (%s)' % (
                    volume_id, errors.one_line(exc, style=errors.STATUS))
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
        return True, msg + ''.join(
            '; ' + n for n in item.data.get('notes', ())), None


REATTACH = Reattach()


def _root_note(root):
    return ('root volume %s (%s) left attached: nova cannot detach a '
            'boot volume' % root)


def _plan_one(ctx, srv):
    """The re-attach row of one server, or None (no volume, no record)."""
    attached = [(v, d) for v, d, _ in server_volumes(ctx.compute, srv.id)]
    record = recorded(srv)
    if not attached and not record:
        return None
    item = engine.PlanItem(srv, REATTACH, source=srv.compute_host)
    notes = item.data['notes'] = []
    root = root_volume(srv, attached)
    if root is UNKNOWN:
        item.action = None
        item.reason = ('volume-backed, but nova shows no root device name: '
                       'cannot tell its root volume from its data volumes; '
                       'volumes not touched')
        return item
    if root is not None:
        item.data['root'] = root
        notes.append(_root_note(root))
    data = [(v, d) for v, d in attached if root is None or v != root[0]]
    ids = {v for v, _ in attached}
    pending = []
    for vid, device in sorted(record.items()):
        if vid in ids:
            continue
        refusal, gone = _check_recorded(ctx, srv, vid)
        if refusal:
            item.action = None
            item.reason = refusal
            return item
        if gone:
            notes.append('recorded volume %s no longer exists: record '
                         'dropped' % vid)
            item.data.setdefault('gone', []).append(vid)
            continue
        pending.append((vid, device))
    item.data['attached'] = [v for v, _ in data]
    item.data['volumes'] = sorted(data + pending,
                                  key=lambda t: (t[1] or '', t[0]))
    if pending:
        notes.insert(0, '%s detached by an interrupted run (%s*): attached '
                     'again' % (', '.join(v for v, _ in pending), RECORD))
    up = srv.status == 'ACTIVE' and srv.power_state == nova.POWER_RUNNING
    if not up:
        item.action = None
        item.reason = 'not up (%s): volumes not touched' % srv.status
        if pending:
            item.reason += ('; %s still detached, recorded on the server '
                            '(%s*): rerun when it is up' % (
                                ', '.join(v for v, _ in pending), RECORD))
    elif not item.data['volumes']:
        item.action = None
        item.success_if_skipped = True
        item.reason = '; '.join(notes) or 'no volume'
    else:
        item.reason = '; '.join(notes)
    return item


def _check_recorded(ctx, srv, vid):
    """``(refusal, gone)`` for the recorded volume ``vid`` of ``srv``:
    a reason not to attach it, or ``gone`` when it no longer exists."""
    block_storage = ctx.options.get('block_storage')
    try:
        vol = ctx.api(block_storage.get_volume, vid)
    except Exception as exc:
        if errors.http_status(exc) == 404:
            return None, True
        raise
    if vol.project_id and vol.project_id != srv.project_id:
        return ('the record %s%s names a volume of another project: not '
                'attached (remove it: openstack server unset --property '
                '%s%s %s)' % (RECORD, vid, RECORD, vid, srv.id)), False
    others = [a.get('server_id') for a in vol.attachments or ()
              if a.get('server_id') != srv.id]
    if others:
        return ('recorded volume %s is attached to server %s now: not '
                'taken back (the record %s%s is left)' % (
                    vid, others[0], RECORD, vid)), False
    return None, False


def reattach_items(ctx, items, opts, features, guard=None):
    """Plan and run Reattach for the servers of ``items`` that are up.

    Returns the new items (method ``reattach``), one per server with
    volumes or a re-attach record.  Servers with neither get no row.
    """
    block_storage = ctx.options.get('block_storage')
    out = []
    for item in items:
        new = _plan_one(ctx, ctx.api(ctx.compute.get_server, item.id))
        if new is not None:
            out.append(new)
    todo = [i for i in out if i.action]
    if not opts.dry_run:
        for i in out:
            _forget(ctx, i, i.data.get('gone', ()))
    if todo and not opts.dry_run:
        ids = [v for i in todo for v, _ in i.data['volumes']]
        poller = VolumePoller(block_storage, ctx.host, ids)
        executor = engine.Executor(
            ctx, poller, max_parallel=opts.max_parallel,
            poll_interval=opts.poll_interval, timeout=opts.timeout,
            on_timeout='leave', retries=0, guard=guard)
        ctx.emit('plan', 're-attaching the volumes of %d server(s)' %
                 len(todo))
        try:
            executor.run(todo)
        finally:
            for i in todo:
                _settle_record(ctx, i)
    for i in out:
        if i.result is None:
            i.result = engine.PLANNED if (opts.dry_run and i.action) \
                else engine.SKIPPED
    return out


def _forget(ctx, item, volume_ids):
    """Remove the record of ``volume_ids`` from the item's server."""
    if volume_ids:
        ctx.api(ctx.compute.delete_server_metadata, item.id,
                [RECORD + v for v in volume_ids])


def _settle_record(ctx, item):
    """After the run: the record of every volume in use by the server
    again goes; what is still detached stays recorded, and the row says
    how to get it back."""
    if 'phase' not in item.data:
        return  # never recorded nor detached (not up, refused record)
    try:
        back = {v for v, _, _ in server_volumes(ctx.compute, item.id)}
        _forget(ctx, item, [v for v, _ in item.data['volumes']
                            if v in back])
    except Exception as exc:
        item.message = '%s; the record %s* could not be updated (%s)' % (
            item.message or '', RECORD, errors.one_line(
                exc, style=errors.STATUS))
        return
    left = [v for v, _ in item.data['volumes'] if v not in back]
    if left:
        item.message = ('%s; %s still detached, recorded on the server as '
                        '%s*: rerun recover-all --reattach-volumes to '
                        'attach again' % (item.message or item.result,
                                          ', '.join(left), RECORD))
