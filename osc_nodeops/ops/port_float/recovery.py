"""S16: get an address back as a float port, directly or by the
guide's loop, deleting every port made on the way but the kept one."""

import ipaddress
import uuid

from openstack import exceptions as sdk_exc

from osc_nodeops import errors
from osc_nodeops.ops.port_float.base import DEFAULT_MAX_ATTEMPTS
from osc_nodeops.ops.port_float.base import describe
from osc_nodeops.ops.port_float.base import find_network
from osc_nodeops.ops.port_float.base import has_address
from osc_nodeops.ops.port_float.base import holder_text
from osc_nodeops.ops.port_float.base import holders
from osc_nodeops.ops.port_float.base import http_message
from osc_nodeops.ops.port_float.base import network_subnets
from osc_nodeops.ops.port_float.base import noop
from osc_nodeops.ops.port_float.base import parse_address
from osc_nodeops.ops.port_float.base import port_addresses
from osc_nodeops.ops.port_float.base import RECOVER_PREFIX
from osc_nodeops.ops.port_float.base import subnet_for
from osc_nodeops.ops.port_float.base import TAG


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
    events = events or noop
    if max_attempts < 1:
        raise errors.UsageError('--max-attempts must be at least 1')
    address = parse_address(ip)
    net = find_network(conn, network)
    subnet = subnet_for(network_subnets(conn, net), address, net)
    _check_assignable(subnet, address)
    name = name or 'recovered-%s' % address
    held = holders(conn, net.id, address)
    if held:
        raise errors.Refused('address %s is held by %s; nothing changed'
                             % (address, holder_text(held[0])))
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
                % (kept.id, address, http_message(exc), name, TAG,
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
        held = holders(conn, run.net.id, address)
        raise errors.Refused('address %s is held by %s; nothing changed'
                             % (address, holder_text(held[0]) if held
                                else 'a port this project cannot see (%s)'
                                % http_message(exc)))
    except sdk_exc.HttpException as exc:
        raise errors.Refused('neutron refused a port with address %s: %s'
                             % (address, http_message(exc)))
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
                    run.attempts, max_attempts, http_message(exc)))
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
