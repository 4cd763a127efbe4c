"""S13, S15 and move: attach a float port to a server, detach it
through nova (keeping it), move it; and nova's view of a port (whether
nova created it, and so deletes it on detach)."""

import datetime

from openstack import exceptions as sdk_exc

from osc_nodeops import errors
from osc_nodeops import timeutil
from osc_nodeops.ops.cloud import calls
from osc_nodeops.ops.cloud import waiting
from osc_nodeops.ops.port_float.base import ACTIONS_MICROVERSION
from osc_nodeops.ops.port_float.base import change
from osc_nodeops.ops.port_float.base import DEFAULT_TIMEOUT
from osc_nodeops.ops.port_float.base import describe
from osc_nodeops.ops.port_float.base import find_float_port
from osc_nodeops.ops.port_float.base import find_server
from osc_nodeops.ops.port_float.base import http_message
from osc_nodeops.ops.port_float.base import noop
from osc_nodeops.ops.port_float.base import port_addresses
from osc_nodeops.ops.port_float.base import read


# -- nova's view of a port --------------------------------------------------

def server_requests(conn, server_id):
    """The server's create/attach_interface actions: [(start, end)].

    ``end`` is the action's ``updated_at`` (last event start/finish, compute
    API 2.58), None when unknown.
    """
    def get():
        resp = conn.compute.get('/servers/%s/os-instance-actions'
                                % server_id,
                                microversion=ACTIONS_MICROVERSION)
        if resp.status_code >= 500:
            sdk_exc.raise_from_response(resp)
        return resp

    resp = read(get)
    if resp.status_code >= 400:
        raise errors.Refused('cannot read the actions of server %s: HTTP %d'
                             % (server_id, resp.status_code))
    actions = resp.json().get('instanceActions', [])
    result = []
    for action in actions:
        if action.get('action') in ('create', 'attach_interface'):
            result.append((timeutil.parse_time(action.get('start_time')),
                           timeutil.parse_time(action.get('updated_at'))))
    return sorted(result, key=lambda r: r[0] or timeutil.EPOCH)


def nova_created(port, requests):
    """Whether nova may have created PORT itself (and deletes it on detach).

    neutron's ``created_at`` has a one-second resolution, so the port was
    really created in [T, T+1s).  nova creates a port while it handles a
    create or attach_interface request; a port passed to nova existed before
    the request that passed it.  The port is known to be passed when it was
    created before the server's first request, or outside every request's
    window and before a later request.  Anything else counts as
    nova-created: the caller must then not detach through nova.
    """
    created = timeutil.parse_time(port.created_at)
    if created is None or not requests:
        return True
    one = datetime.timedelta(seconds=1)
    starts = [s for s, _ in requests if s is not None]
    if not starts:
        return True
    if created + one <= min(starts):
        return False
    for start, end in requests:
        if start is None:
            return True
        if end is None:
            return True
        if start - one < created <= end:
            return True
    return not any(s >= created + one for s in starts)


# -- attach / detach / move -------------------------------------------------

def _attach(conn, port, server, timeout, events, interval):
    events('attaching port %s to server %s' % (port.id, _label(server)))

    def on_server(patient):
        def look():
            return read(lambda: conn.network.get_port(
                port.id)).device_id == server.id
        if not patient:
            return look()
        return waiting.wait_until(look, timeout, interval,
                                  retry_if=calls.is_transient)

    try:
        change(lambda: conn.compute.create_server_interface(
            server, port_id=port.id), 'attach of port %s' % port.id,
            on_server, events)
    except sdk_exc.HttpException as exc:
        raise errors.Refused('nova refused to attach port %s to server %s: '
                             '%s' % (port.id, _label(server),
                                     http_message(exc)))
    addresses = port_addresses(port)
    state = {}

    def ready():
        p = conn.network.get_port(port.id)
        s = conn.compute.get_server(server.id)
        state['port'], state['server'] = p, s
        return (p.status == 'ACTIVE' and p.device_id == server.id
                and _server_shows(s, addresses))

    if not waiting.wait_until(ready, timeout, interval,
                              retry_if=calls.is_transient):
        p, s = state.get('port'), state.get('server')
        raise errors.Incomplete(
            'port %s was attached to server %s but within %ss it is %s and '
            'the server shows %s' % (
                port.id, _label(server), timeout,
                getattr(p, 'status', 'unknown'),
                sorted(a.get('addr') for v in (getattr(s, 'addresses', None)
                                             or {}).values() for a in v)
                or 'no addresses'))
    events('port %s is ACTIVE on server %s with %s'
           % (port.id, _label(server), ', '.join(addresses)))
    return describe(state['port'], state['server'])


def attach(conn, port_ref, server_ref, timeout=DEFAULT_TIMEOUT, events=None,
           interval=1.0):
    """S13: attach a detached float port to an existing server and wait.

    Attaching it to the server it is on already does nothing (and says so).
    """
    events = events or noop
    port = find_float_port(conn, port_ref)
    server = find_server(conn, server_ref)
    if port.device_id == server.id:
        events('port %s is already attached to server %s; nothing to do'
               % (port.id, _label(server)))
        return describe(port, server)
    if port.device_id:
        raise errors.Refused('port %s is attached to %s; use port float '
                             'move' % (port.id, _holder(conn, port)))
    return _attach(conn, port, server, timeout, events, interval)


def _label(server):
    """A server for people: its name and ID."""
    name = getattr(server, 'name', None)
    return '%s (%s)' % (name, server.id) if name else server.id


def _holder(conn, port):
    """What PORT is attached to, for people: a server by name and ID."""
    owner = port.device_owner or ''
    if owner.startswith('compute:'):
        server = read(lambda: conn.compute.find_server(
            port.device_id, ignore_missing=True))
        return 'server %s' % (_label(server) if server is not None
                              else port.device_id)
    return '%s %s' % (owner or 'device', port.device_id)


def _check_detachable(conn, port):
    """The server PORT is attached to; ``errors.Refused`` if unsafe."""
    owner = port.device_owner or ''
    if not owner.startswith('compute:'):
        raise errors.Refused('port %s is used by %s %s, not by a server; '
                             'nothing changed' % (port.id, owner or '?',
                                                  port.device_id))
    server = read(lambda: conn.compute.find_server(port.device_id,
                                                    ignore_missing=True))
    if server is None:
        raise errors.Refused('port %s is attached to server %s, which this '
                             'project cannot see; nothing changed'
                             % (port.id, port.device_id))
    if nova_created(port, server_requests(conn, server.id)):
        raise errors.Refused(
            'port %s may have been created by nova for server %s (it was '
            'created at %s, while nova handled a request of that server): '
            'nova deletes such a port on detach and on server deletion, so '
            'detaching would lose %s; nothing changed' % (
                port.id, _label(server), port.created_at,
                ', '.join(port_addresses(port)) or 'its addresses'))
    return server


def _detach(conn, port, server, timeout, events, interval):
    addresses = port_addresses(port)
    events('detaching port %s from server %s through nova'
           % (port.id, _label(server)))

    def off_server(patient):
        def look():
            p = read(lambda: conn.network.find_port(port.id,
                                                     ignore_missing=True))
            return p is None or p.device_id != server.id
        if not patient:
            return look()
        return waiting.wait_until(look, timeout, interval,
                                  retry_if=calls.is_transient)

    try:
        change(lambda: conn.compute.delete_server_interface(
            port.id, server=server.id, ignore_missing=False),
            'detach of port %s' % port.id, off_server, events)
    except sdk_exc.HttpException as exc:
        raise errors.Refused('nova refused to detach port %s from server '
                             '%s: %s' % (port.id, _label(server),
                                         http_message(exc)))
    state = {}

    def done():
        p = conn.network.find_port(port.id, ignore_missing=True)
        state['port'] = p
        if p is None:
            return True
        if p.device_id:
            return False
        ifaces = [i.port_id for i in conn.compute.server_interfaces(server)]
        return port.id not in ifaces

    if not waiting.wait_until(done, timeout, interval,
                              retry_if=calls.is_transient):
        p = state.get('port')
        raise errors.Incomplete(
            'nova accepted the detach of port %s from server %s but within '
            '%ss the port still has device %s' % (
                port.id, _label(server), timeout,
                getattr(p, 'device_id', '?')))
    p = state['port']
    if p is None:
        raise errors.Incomplete('port %s disappeared while nova detached '
                                'it (addresses %s lost)'
                                % (port.id, ', '.join(addresses)))
    if port_addresses(p) != addresses:
        raise errors.Incomplete('port %s was detached but its addresses '
                                'changed from %s to %s' % (
                                    port.id, addresses, port_addresses(p)))
    events('port %s detached; it keeps %s' % (port.id, ', '.join(addresses)))
    return p


def detach(conn, port_ref, timeout=DEFAULT_TIMEOUT, events=None,
           interval=1.0):
    """S15: take a float port off its server through nova, keeping it.

    Returns its row; ``detached_from`` is None when the port was not
    attached (nothing to do).
    """
    events = events or noop
    port = find_float_port(conn, port_ref)
    if not port.device_id:
        events('port %s was not attached; nothing to do' % port.id)
        return dict(describe(port), detached_from=None)
    server = _check_detachable(conn, port)
    p = _detach(conn, port, server, timeout, events, interval)
    row = describe(p)
    row['detached_from'] = server.id
    return row


def move(conn, port_ref, server_ref, timeout=DEFAULT_TIMEOUT, events=None,
         interval=1.0):
    """Detach a float port from its server and attach it to another."""
    events = events or noop
    port = find_float_port(conn, port_ref)
    target = find_server(conn, server_ref)
    source = None
    if port.device_id:
        if port.device_id == target.id:
            events('port %s is already attached to server %s; nothing to '
                   'do' % (port.id, _label(target)))
            return dict(describe(port, target), moved_from=None)
        source = _check_detachable(conn, port)
        port = _detach(conn, port, source, timeout, events, interval)
    try:
        row = _attach(conn, port, target, timeout, events, interval)
    except Exception as exc:
        # Whatever went wrong (also a raw SDK error), the operator must
        # learn that the port left its server and where its addresses are.
        if source is None:
            raise
        raise errors.Incomplete(
            'port %s was detached from server %s and keeps %s, but '
            'attaching it to server %s failed: %s' % (
                port.id, _label(source), ', '.join(port_addresses(port)),
                _label(target), errors.one_line(exc))) from exc
    row['moved_from'] = source.id if source else None
    return row



def _server_shows(server, addresses):
    shown = set()
    for entries in (server.addresses or {}).values():
        for entry in entries:
            shown.add(entry.get('addr'))
    return all(a in shown for a in addresses)
