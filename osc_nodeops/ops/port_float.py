"""Reusable neutron ports as floating public addresses (runbook S12-S16).

On provider networks without floating IPs an operator keeps an address by
keeping its port.  A "float port" is a neutron port carrying the tag
:data:`TAG`; every command here refuses ports without it, so nothing else is
ever touched.

Plain Python over an openstacksdk ``Connection``:

* :func:`create` (S12), :func:`list_ports`, :func:`attach` (S13),
  :func:`detach` (S15), :func:`move`, :func:`recover` (S16) and
  :func:`check` (S14).
* Bad input raises ``errors.UsageError``, a missing network, server or port
  ``errors.NotFound``, a refused request ``errors.Refused`` (one line,
  nothing changed).
* Something started but not finished raises ``errors.Incomplete`` with a
  one-line message saying what state things were left in.
* Progress goes to the ``events`` callback, one line (a str) at a time.

What nova does to ports (read in nova 34, checked on the minicloud):

* A port passed to nova (``server create --nic port-id=``, ``server add
  port``) is *preserved*: detaching it through nova, or deleting the server,
  unbinds it (device_id, device_owner, binding host and profile cleared) and
  removes nova's ``virtual_interfaces`` row.
* A port nova created itself (``--nic net-id=``, ``server add network``) is
  *deleted* by nova both on detach and on server deletion.  nova keeps that
  flag (``preserve_on_delete``) in its instance info cache, which no API
  shows or changes.  :func:`nova_created` infers it from the timestamps of
  the port and of the server's create/attach requests; :func:`detach`
  refuses (changing nothing) when nova may have created the port.
* Clearing device_id/owner/binding profile on the neutron side only (the
  guide's S15) leaves nova a phantom interface and a stale
  ``virtual_interfaces`` row: a later ``server add port`` elsewhere fails
  with HTTP 500.  So detach always goes through nova.
"""

import concurrent.futures
import datetime
import errno
import ipaddress
import socket
import time
import uuid

from openstack import exceptions as sdk_exc
from openstack import utils as sdk_utils

from osc_nodeops import errors
from osc_nodeops import timeutil

#: The neutron tag marking a port as ours (a float port).
TAG = 'nodeops-float'

#: Name prefix of the throw-away ports of the recovery loop.
RECOVER_PREFIX = 'nodeops-recover-'

#: Compute API microversion whose instance actions carry ``updated_at``.
ACTIONS_MICROVERSION = '2.58'

DEFAULT_MAX_ATTEMPTS = 20
DEFAULT_TIMEOUT = 120.0


def _noop(message):
    pass


def _http_message(exc):
    """One line out of an SDK HTTP exception."""
    return errors.one_line(exc)


# -- addresses --------------------------------------------------------------

def port_addresses(port):
    """The port's fixed IP addresses, IPv4 first."""
    ips = [f.get('ip_address') for f in (port.fixed_ips or [])
           if f.get('ip_address')]
    return sorted(ips, key=lambda a: (ipaddress.ip_address(a).version,
                                      ipaddress.ip_address(a)))


def has_address(port, address):
    """Whether PORT holds ADDRESS (an ipaddress object), in any spelling."""
    return any(ipaddress.ip_address(a) == address
               for a in port_addresses(port))


def is_ours(port):
    return TAG in (port.tags or [])


def describe(port, server=None):
    """A flat dict of a float port for ShowOne/Lister output."""
    return {
        'id': port.id,
        'name': port.name,
        'network_id': port.network_id,
        'addresses': port_addresses(port),
        'mac_address': port.mac_address,
        'server_id': port.device_id or None,
        'server_name': getattr(server, 'name', None) if server else None,
        'binding_host': port.binding_host_id or None,
        'status': port.status,
        'description': port.description,
        'tags': sorted(port.tags or []),
    }


# -- calls that may meet a transient fault -----------------------------------

# How often a call that met a 5xx, a dropped connection or a timeout is
# tried; the waits between grow 1, 2, 4, 8 s.
CALL_ATTEMPTS = 5


def _read(fn, sleep=None):
    """A look (GET) that meets a transient fault is simply made again."""
    from osc_nodeops.ops import engine
    return engine.call_with_retry(fn, attempts=CALL_ATTEMPTS, sleep=sleep)


def _change(call, what, took_effect, events, sleep=None):
    """A change (POST/DELETE) whose answer may be lost on the way back.

    After a transient fault, ``took_effect()`` looks whether the call went
    through anyway before it is made again, so a change that took effect
    is never asked for twice; a refusal of a repeated call (409, 404) is
    taken as the change already under way when ``took_effect(True)`` (the
    patient look) sees it done.  Otherwise the refusal stands.
    """
    from osc_nodeops.ops import engine
    sleep = sleep or time.sleep
    last = None
    for n in range(CALL_ATTEMPTS):
        try:
            return call()
        except Exception as exc:
            if not engine.is_transient(exc):
                if last is not None and took_effect(True):
                    return None
                raise
            last = exc
        events('%s: %s; looking whether it went through'
               % (what, errors.one_line(last, limit=200)))
        if took_effect(False):
            return None
        if n < CALL_ATTEMPTS - 1:
            sleep(min(8.0, 2.0 ** n))
    raise errors.Incomplete('%s: failed %d times, last: %s' % (
        what, CALL_ATTEMPTS, errors.one_line(last, limit=500)))


# -- look-ups ----------------------------------------------------------------

def _find_one(find, kind, name_or_id, not_found=' not found'):
    """``find(name_or_id, ignore_missing=True)`` with one-line errors for
    an ambiguous name and a missing resource."""
    try:
        found = _read(lambda: find(name_or_id, ignore_missing=True))
    except sdk_exc.DuplicateResource:
        raise errors.Refused('more than one %s is named %r; use its ID'
                             % (kind, name_or_id))
    if found is None:
        raise errors.NotFound('%s %r%s' % (kind, name_or_id, not_found))
    return found


def find_network(conn, name_or_id):
    return _find_one(conn.network.find_network, 'network', name_or_id)


def find_server(conn, name_or_id):
    return _find_one(conn.compute.find_server, 'server', name_or_id,
                     ' not found (or not visible to this project)')


def find_float_port(conn, name_or_id):
    """The float port NAME_OR_ID; NotFound if missing, Refused if not
    ours."""
    port = _find_one(conn.network.find_port, 'port', name_or_id)
    if not is_ours(port):
        raise errors.Refused(
            'port %s is not a float port (no %r tag); nothing changed; '
            'mark it with: openstack port set --tag %s %s'
            % (port.id, TAG, TAG, port.id))
    return port


def _subnets(conn, network):
    return list(conn.network.subnets(network_id=network.id))


def _subnet_for(subnets, address, network):
    for subnet in subnets:
        if address in ipaddress.ip_network(subnet.cidr):
            return subnet
    raise errors.Refused('address %s is outside every subnet of network %s '
                         '(%s)' % (address, network.name or network.id,
                                   ', '.join(s.cidr for s in subnets)
                                   or 'no subnets'))


def parse_address(text):
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise errors.UsageError('%r is not an IP address' % (text,))


def resolve_fixed_ips(conn, network, specs):
    """``--fixed-ip subnet=...,ip-address=...`` to neutron ``fixed_ips``.

    Every subnet must belong to the network and every address must lie in
    its subnet (or, without ``subnet=``, in some subnet of the network).
    """
    subnets = _subnets(conn, network)
    result = []
    for spec in specs or []:
        unknown = set(spec) - {'subnet', 'ip-address'}
        if unknown or not spec:
            raise errors.UsageError(
                '--fixed-ip takes subnet=SUBNET and/or ip-address=IP, got %s'
                % ','.join('%s=%s' % kv for kv in sorted(spec.items())))
        entry = {}
        subnet = None
        if spec.get('subnet'):
            wanted = spec['subnet']
            matches = [s for s in subnets if wanted in (s.id, s.name)]
            if len(matches) > 1:
                raise errors.Refused('more than one subnet of network %s is '
                                     'named %r; use its ID'
                                     % (network.name or network.id, wanted))
            if not matches:
                raise errors.Refused('subnet %r is not a subnet of network %s'
                                     % (wanted, network.name or network.id))
            subnet = matches[0]
            entry['subnet_id'] = subnet.id
        if spec.get('ip-address'):
            address = parse_address(spec['ip-address'])
            if subnet is None:
                subnet = _subnet_for(subnets, address, network)
                entry['subnet_id'] = subnet.id
            elif address not in ipaddress.ip_network(subnet.cidr):
                raise errors.Refused('address %s is not in subnet %s (%s)'
                                     % (address, subnet.name or subnet.id,
                                        subnet.cidr))
            entry['ip_address'] = str(address)
        result.append(entry)
    return result


def _holders(conn, network_id, address):
    """Visible ports of the network holding ADDRESS."""
    return list(conn.network.ports(
        network_id=network_id, fixed_ips=['ip_address=%s' % address]))


def _holder_text(port):
    text = 'port %s' % port.id
    if port.name:
        text += ' (%s)' % port.name
    if port.device_id and (port.device_owner or '').startswith('compute:'):
        text += ', attached to server %s' % port.device_id
    elif port.device_id:
        text += ', device %s %s' % (port.device_owner or '', port.device_id)
    else:
        text += ', not attached'
    if is_ours(port):
        text += ', a float port'
    return text


# -- create / list ----------------------------------------------------------

def create(conn, name, network, fixed_ips=None, description=None,
           events=None):
    """S12: a tagged port meant to outlive servers.  Returns its row."""
    if not name or not name.strip():
        raise errors.UsageError('a float port needs a name (the FQDN its '
                             'address will carry)')
    net = find_network(conn, network)
    ips = resolve_fixed_ips(conn, net, fixed_ips)
    same = [p for p in conn.network.ports(name=name, tags=TAG)]
    if same:
        raise errors.Refused('a float port named %r already exists: %s'
                             % (name, same[0].id))
    for entry in ips:
        if entry.get('ip_address'):
            held = _holders(conn, net.id, entry['ip_address'])
            if held:
                raise errors.Refused('address %s is held by %s'
                                     % (entry['ip_address'],
                                        _holder_text(held[0])))
    attrs = {'name': name, 'network_id': net.id}
    if ips:
        attrs['fixed_ips'] = ips
    if description is not None:
        attrs['description'] = description
    try:
        port = conn.network.create_port(**attrs)
    except sdk_exc.HttpException as exc:
        raise errors.Refused('neutron refused the port: %s'
                             % _http_message(exc))
    try:
        port = conn.network.set_tags(port, [TAG])
    except BaseException as exc:
        # Never leave a port behind that is not the one asked for.
        conn.network.delete_port(port, ignore_missing=True)
        if isinstance(exc, sdk_exc.HttpException):
            raise errors.Refused('could not tag the new port (deleted it): '
                                 '%s' % _http_message(exc))
        raise
    port = conn.network.get_port(port.id)
    (events or _noop)('created float port %s with %s' % (
        port.id, ', '.join(port_addresses(port))))
    return describe(port)


def list_ports(conn, network=None):
    """The float ports (optionally of one network) with their servers."""
    query = {'tags': TAG}
    if network:
        query['network_id'] = find_network(conn, network).id
    rows = []
    for port in conn.network.ports(**query):
        server = None
        if port.device_id and (port.device_owner or '').startswith(
                'compute:'):
            server = conn.compute.find_server(port.device_id,
                                              ignore_missing=True)
        rows.append(describe(port, server))
    return rows


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

    resp = _read(get)
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


# -- waiting ----------------------------------------------------------------

def _wait(predicate, timeout, interval):
    """PREDICATE's first true value within TIMEOUT seconds, else None.

    A transient fault of a look (a 5xx, a dropped connection) is one look
    that saw nothing: the wait goes on until TIMEOUT.
    """
    from osc_nodeops.ops import engine
    try:
        for _ in sdk_utils.iterate_timeout(timeout, 'timed out', interval):
            try:
                value = predicate()
            except Exception as exc:
                if not engine.is_transient(exc):
                    raise
                continue
            if value:
                return value
    except sdk_exc.ResourceTimeout:
        return None


def _server_shows(server, addresses):
    shown = set()
    for entries in (server.addresses or {}).values():
        for entry in entries:
            shown.add(entry.get('addr'))
    return all(a in shown for a in addresses)


# -- attach / detach / move -------------------------------------------------

def _attach(conn, port, server, timeout, events, interval):
    events('attaching port %s to server %s' % (port.id, _label(server)))

    def on_server(patient):
        def look():
            return _read(lambda: conn.network.get_port(
                port.id)).device_id == server.id
        return _wait(look, timeout, interval) if patient else look()

    try:
        _change(lambda: conn.compute.create_server_interface(
            server, port_id=port.id), 'attach of port %s' % port.id,
            on_server, events)
    except sdk_exc.HttpException as exc:
        raise errors.Refused('nova refused to attach port %s to server %s: '
                             '%s' % (port.id, _label(server),
                                     _http_message(exc)))
    addresses = port_addresses(port)
    state = {}

    def ready():
        p = conn.network.get_port(port.id)
        s = conn.compute.get_server(server.id)
        state['port'], state['server'] = p, s
        return (p.status == 'ACTIVE' and p.device_id == server.id
                and _server_shows(s, addresses))

    if not _wait(ready, timeout, interval):
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
    events = events or _noop
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
        server = _read(lambda: conn.compute.find_server(
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
    server = _read(lambda: conn.compute.find_server(port.device_id,
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
            p = _read(lambda: conn.network.find_port(port.id,
                                                     ignore_missing=True))
            return p is None or p.device_id != server.id
        return _wait(look, timeout, interval) if patient else look()

    try:
        _change(lambda: conn.compute.delete_server_interface(
            port.id, server=server.id, ignore_missing=False),
            'detach of port %s' % port.id, off_server, events)
    except sdk_exc.HttpException as exc:
        raise errors.Refused('nova refused to detach port %s from server '
                             '%s: %s' % (port.id, _label(server),
                                         _http_message(exc)))
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

    if not _wait(done, timeout, interval):
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
    events = events or _noop
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
    events = events or _noop
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


# -- recover ----------------------------------------------------------------

def eui64_mac(address):
    """The MAC an EUI-64 IPv6 address was derived from, or None."""
    packed = address.packed
    if address.version != 6 or packed[11] != 0xff or packed[12] != 0xfe:
        return None
    octets = [packed[8] ^ 0x02, packed[9], packed[10],
              packed[13], packed[14], packed[15]]
    return ':'.join('%02x' % o for o in octets)


def _check_assignable(subnet, address):
    """Refuse addresses no port of SUBNET can ever have."""
    network = ipaddress.ip_network(subnet.cidr)
    if subnet.gateway_ip and address == ipaddress.ip_address(
            subnet.gateway_ip):
        raise errors.Refused('address %s is the gateway of subnet %s'
                             % (address, subnet.name or subnet.id))
    if address == network.network_address or (
            network.version == 4 and address == network.broadcast_address
            and network.prefixlen < 31):
        raise errors.Refused('address %s is the %s address of subnet %s'
                             % (address, 'network'
                                if address == network.network_address
                                else 'broadcast', subnet.name or subnet.id))


def _in_pools(subnet, address):
    pools = subnet.allocation_pools or []
    if not pools:
        return True
    return any(ipaddress.ip_address(p['start']) <= address
               <= ipaddress.ip_address(p['end']) for p in pools)


def _tag_and_name(conn, port, name, description):
    attrs = {'name': name}
    if description is not None:
        attrs['description'] = description
    port = conn.network.update_port(port, **attrs)
    return conn.network.set_tags(port, sorted(set(port.tags or []) | {TAG}))


class _Recovery(object):
    """What one ``recover`` run has: the address, its subnet, the ports it
    created (all deleted at the end but the kept one)."""

    def __init__(self, net, subnet, address):
        self.net = net
        self.subnet = subnet
        self.address = address
        self.auto = (subnet.ip_version == 6 and subnet.ipv6_address_mode in
                     ('slaac', 'dhcpv6-stateless'))
        self.loop_name = '%s%s-%s' % (RECOVER_PREFIX, address,
                                      uuid.uuid4().hex[:8])
        self.created = []     # IDs of every port this run created
        self.kept = None
        self.attempts = 0
        self.method = None


def recover(conn, ip, network, max_attempts=DEFAULT_MAX_ATTEMPTS, name=None,
            description=None, events=None):
    """S16: get back the address IP of NETWORK as a float port.

    First a port with ``fixed_ips`` ``ip_address`` (or, on an automatic
    IPv6 subnet, the MAC the address derives from); when neutron's policy
    forbids that, the guide's loop: create ports on the address's subnet
    until one gets it, at most MAX_ATTEMPTS.  Every port created here except
    the kept one is deleted, also on error and KeyboardInterrupt.

    Returns a dict: the kept port's row plus ``method``, ``attempts``,
    ``deleted``.
    """
    events = events or _noop
    if max_attempts < 1:
        raise errors.UsageError('--max-attempts must be at least 1')
    address = parse_address(ip)
    net = find_network(conn, network)
    subnet = _subnet_for(_subnets(conn, net), address, net)
    _check_assignable(subnet, address)
    name = name or 'recovered-%s' % address
    held = _holders(conn, net.id, address)
    if held:
        raise errors.Refused('address %s is held by %s; nothing changed'
                             % (address, _holder_text(held[0])))
    run = _Recovery(net, subnet, address)
    try:
        if not _ask_directly(conn, run, events):
            _recovery_loop(conn, run, max_attempts, events)
        kept = run.kept
        assert kept is not None, 'the loop returns only with a kept port'
        try:
            run.kept = _tag_and_name(conn, kept, name, description)
        except sdk_exc.HttpException as exc:
            # The kept port holds the address: keep it, say so.
            raise errors.Incomplete(
                'port %s holds %s but could not be renamed/tagged: %s; '
                'tag it with: openstack port set --name %s --tag %s %s'
                % (kept.id, address, _http_message(exc), name, TAG,
                   kept.id))
    except BaseException:
        if run.kept is not None:
            events('port %s holds %s and was kept' % (run.kept.id, address))
        raise
    finally:
        deleted, leftover = _cleanup(conn, net.id, run.loop_name,
                                     run.created, run.kept)
        if leftover:
            # Not silently: the operator must know which ports remain.
            events('could not delete ports %s created by this command: '
                   'delete them with: openstack port delete %s'
                   % (', '.join(leftover), ' '.join(leftover)))
    kept = run.kept
    row = describe(conn.network.get_port(kept.id))
    row.update(method=run.method, attempts=run.attempts,
               deleted=len(deleted))
    if leftover:
        raise errors.Incomplete('recovered %s as port %s but could not '
                                'delete ports %s' % (
                                    address, kept.id, ', '.join(leftover)))
    events('recovered %s as port %s (%s, %d attempt(s), %d deleted)'
           % (address, kept.id, run.method, run.attempts, len(deleted)))
    return row


def _ask_directly(conn, run, events):
    """1. Ask neutron for the address (or its EUI-64 MAC) directly.

    True when it was given (``run.kept``), False when policy forbids asking.
    """
    address, subnet = run.address, run.subnet
    attrs = {'network_id': run.net.id, 'name': run.loop_name}
    if run.auto:
        mac = eui64_mac(address)
        if mac is None:
            raise errors.Refused(
                'address %s is on subnet %s, where addresses derive '
                'from the MAC (%s), and is not an EUI-64 address: it '
                'cannot be recovered' % (address, subnet.id,
                                         subnet.ipv6_address_mode))
        attrs['mac_address'] = mac
        attrs['fixed_ips'] = [{'subnet_id': subnet.id}]
    else:
        attrs['fixed_ips'] = [{'subnet_id': subnet.id,
                               'ip_address': str(address)}]
    try:
        port = conn.network.create_port(**attrs)
    except sdk_exc.ForbiddenException:
        events('policy forbids asking neutron for %s directly; trying '
               'the recovery loop' % address)
        return False
    except sdk_exc.ConflictException as exc:
        held = _holders(conn, run.net.id, address)
        raise errors.Refused('address %s is held by %s; nothing changed'
                             % (address, _holder_text(held[0]) if held
                                else 'a port this project cannot see (%s)'
                                % _http_message(exc)))
    except sdk_exc.HttpException as exc:
        raise errors.Refused('neutron refused a port with address %s: %s'
                             % (address, _http_message(exc)))
    run.created.append(port.id)
    run.attempts = 1
    run.method = 'direct'
    if not has_address(port, address):
        raise errors.Incomplete('neutron gave %s instead of %s'
                                % (port_addresses(port), address))
    run.kept = port
    return True


def _recovery_loop(conn, run, max_attempts, events):
    """2. The guide's loop, bounded: ports on the subnet until one has the
    address (``run.kept``)."""
    address, subnet = run.address, run.subnet
    if run.auto:
        raise errors.Refused(
            'address %s derives from MAC %s on subnet %s and policy '
            'forbids choosing a MAC: the loop cannot find it; ask an '
            'admin' % (address, eui64_mac(address), subnet.id))
    if not _in_pools(subnet, address):
        raise errors.Refused(
            'address %s is outside the allocation pools of subnet '
            '%s and policy forbids asking for it: the loop cannot '
            'get it; ask an admin' % (address, subnet.id))
    run.method = 'loop'
    while run.attempts < max_attempts:
        run.attempts += 1
        try:
            port = conn.network.create_port(
                network_id=run.net.id, name=run.loop_name,
                fixed_ips=[{'subnet_id': subnet.id}])
        except sdk_exc.HttpException as exc:
            raise errors.Incomplete(
                'attempt %d of %d: neutron refused a port: %s' % (
                    run.attempts, max_attempts, _http_message(exc)))
        run.created.append(port.id)
        events('attempt %d/%d: %s' % (run.attempts, max_attempts,
                                      ', '.join(port_addresses(port))
                                      or '-'))
        if has_address(port, address):
            run.kept = port
            return
    raise errors.Incomplete(
        'address %s not obtained in %d attempts (it may be held '
        'by a port this project cannot see, or the subnet has '
        'many free addresses)' % (address, run.attempts))


def _cleanup(conn, network_id, loop_name, created, kept):
    """Delete every port this run created except KEPT.

    Ports are found by the IDs we got back and by the run's unique name, so
    a port whose create request was interrupted before its answer arrived
    is deleted too.  Returns (deleted IDs, IDs that could not be deleted).
    """
    kept_id = kept.id if kept is not None else None
    doomed = [pid for pid in created if pid != kept_id]
    try:
        for port in conn.network.ports(network_id=network_id,
                                       name=loop_name):
            if port.id != kept_id and port.id not in doomed:
                doomed.append(port.id)
    except Exception:
        pass
    deleted, leftover = [], []
    for pid in doomed:
        try:
            conn.network.delete_port(pid, ignore_missing=True)
            deleted.append(pid)
        except Exception:
            leftover.append(pid)
    return deleted, leftover


# -- check ------------------------------------------------------------------

def probe(address, tcp_port, timeout, clock=time.monotonic):
    """Open a TCP connection to ADDRESS:TCP_PORT; (result, detail, seconds).

    result is ``open``, ``refused``, ``timeout`` or ``unreachable``.
    """
    family = (socket.AF_INET6 if ipaddress.ip_address(address).version == 6
              else socket.AF_INET)
    start = clock()
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect((address, tcp_port))
        result, detail = 'open', 'connected'
    except socket.timeout:
        result, detail = 'timeout', 'no answer within %ss' % timeout
    except ConnectionRefusedError:
        result, detail = 'refused', 'connection refused'
    except OSError as exc:
        result = 'unreachable'
        detail = exc.strerror or errno.errorcode.get(exc.errno or 0,
                                                     str(exc))
    finally:
        sock.close()
    return result, detail, round(clock() - start, 3)


def check(conn, port_ref, tcp_port=22, timeout=2.0, probe_fn=None):
    """S14: can this machine open TCP_PORT on each address of the port."""
    if not 0 < tcp_port < 65536:
        raise errors.UsageError('TCP port %s is not in 1-65535' % tcp_port)
    if timeout <= 0:
        raise errors.UsageError('timeout must be positive')
    probe_fn = probe_fn or probe
    port = find_float_port(conn, port_ref)
    addresses = port_addresses(port)
    if not addresses:
        raise errors.Refused('port %s has no addresses' % port.id)
    rows = []
    with concurrent.futures.ThreadPoolExecutor(len(addresses)) as pool:
        futures = [pool.submit(probe_fn, a, tcp_port, timeout)
                   for a in addresses]
        for address, fut in zip(addresses, futures):
            result, detail, seconds = fut.result()
            rows.append({'port_id': port.id, 'address': address,
                         'ip_version': ipaddress.ip_address(address).version,
                         'tcp_port': tcp_port, 'result': result,
                         'detail': detail, 'seconds': seconds})
    return rows
