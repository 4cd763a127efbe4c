"""What every float-port command shares: the tag and defaults, a port's
addresses and row, calls that may meet a transient fault, waiting, and the
look-ups of networks, servers, subnets and float ports."""

import ipaddress

from openstack import exceptions as sdk_exc

from osc_nodeops import errors
from osc_nodeops.ops.cloud import calls

#: The neutron tag marking a port as ours (a float port).
TAG = 'nodeops-float'

#: Name prefix of the throw-away ports of the recovery loop.
RECOVER_PREFIX = 'nodeops-recover-'

#: Compute API microversion whose instance actions carry ``updated_at``.
ACTIONS_MICROVERSION = '2.58'

DEFAULT_MAX_ATTEMPTS = 20
DEFAULT_TIMEOUT = 120.0


def noop(message):
    pass


def http_message(exc):
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
#: The pause after the n-th failed change: 1, 2, 4, 8 s.
CHANGE_BACKOFF = calls.exponential(delay=1.0, cap=8.0)


def read(fn, sleep=None):
    """A look (GET) that meets a transient fault is simply made again."""
    return calls.call_with_retry(fn, attempts=CALL_ATTEMPTS, sleep=sleep)


def change(call, what, took_effect, events, sleep=None):
    """A change (POST/DELETE) whose answer may be lost on the way back.

    After a transient fault, ``took_effect()`` looks whether the call went
    through anyway before it is made again, so a change that took effect
    is never asked for twice; a refusal of a repeated call (409, 404) is
    taken as the change already under way when ``took_effect(True)`` (the
    patient look) sees it done.  Otherwise the refusal stands.  Only the
    call's own transient faults are retried (``call_with_retry``, pauses
    of 1, 2, 4, 8 s), never a fault of a look.
    """
    faults: list[Exception] = []    # the call's transient faults

    def own_fault(exc):     # not a fault of a look
        return bool(faults) and exc is faults[-1]

    def attempt():
        try:
            return call()
        except Exception as exc:
            if not calls.is_transient(exc):
                if faults and took_effect(True):
                    return None
                raise
            faults.append(exc)
        events('%s: %s; looking whether it went through'
               % (what, errors.one_line(faults[-1], limit=200)))
        if took_effect(False):
            return None
        raise faults[-1]

    try:
        return calls.call_with_retry(
            attempt, attempts=CALL_ATTEMPTS, backoff=CHANGE_BACKOFF,
            sleep=sleep, retry_if=own_fault)
    except Exception as exc:
        if not own_fault(exc):
            raise
    raise errors.Incomplete('%s: failed %d times, last: %s' % (
        what, CALL_ATTEMPTS, errors.one_line(faults[-1], limit=500)))


# -- look-ups ----------------------------------------------------------------

def _find_one(find, kind, name_or_id, not_found=' not found'):
    """``find(name_or_id, ignore_missing=True)`` with one-line errors for
    an ambiguous name and a missing resource."""
    try:
        found = read(lambda: find(name_or_id, ignore_missing=True))
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


def network_subnets(conn, network):
    return list(conn.network.subnets(network_id=network.id))


def subnet_for(subnets, address, network):
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
    subnets = network_subnets(conn, network)
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
                subnet = subnet_for(subnets, address, network)
                entry['subnet_id'] = subnet.id
            elif address not in ipaddress.ip_network(subnet.cidr):
                raise errors.Refused('address %s is not in subnet %s (%s)'
                                     % (address, subnet.name or subnet.id,
                                        subnet.cidr))
            entry['ip_address'] = str(address)
        result.append(entry)
    return result


def holders(conn, network_id, address):
    """Visible ports of the network holding ADDRESS."""
    return list(conn.network.ports(
        network_id=network_id, fixed_ips=['ip_address=%s' % address]))


def holder_text(port):
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
