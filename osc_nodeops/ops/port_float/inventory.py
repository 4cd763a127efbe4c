"""S12: create a float port; list the float ports."""

from openstack import exceptions as sdk_exc

from osc_nodeops import errors
from osc_nodeops.ops.port_float.base import describe
from osc_nodeops.ops.port_float.base import find_network
from osc_nodeops.ops.port_float.base import holder_text
from osc_nodeops.ops.port_float.base import holders
from osc_nodeops.ops.port_float.base import http_message
from osc_nodeops.ops.port_float.base import noop
from osc_nodeops.ops.port_float.base import port_addresses
from osc_nodeops.ops.port_float.base import resolve_fixed_ips
from osc_nodeops.ops.port_float.base import TAG


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
            held = holders(conn, net.id, entry['ip_address'])
            if held:
                raise errors.Refused('address %s is held by %s'
                                     % (entry['ip_address'],
                                        holder_text(held[0])))
    attrs = {'name': name, 'network_id': net.id}
    if ips:
        attrs['fixed_ips'] = ips
    if description is not None:
        attrs['description'] = description
    try:
        port = conn.network.create_port(**attrs)
    except sdk_exc.HttpException as exc:
        raise errors.Refused('neutron refused the port: %s'
                             % http_message(exc))
    try:
        port = conn.network.set_tags(port, [TAG])
    except BaseException as exc:
        # Never leave a port behind that is not the one asked for.
        conn.network.delete_port(port, ignore_missing=True)
        if isinstance(exc, sdk_exc.HttpException):
            raise errors.Refused('could not tag the new port (deleted it): '
                                 '%s' % http_message(exc))
        raise
    port = conn.network.get_port(port.id)
    (events or noop)('created float port %s with %s' % (
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
