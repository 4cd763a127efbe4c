"""``openstack port float create|list|attach|detach|move|recover|check``.

cliff classes only: parse arguments, call ``osc_nodeops.ops.port_float``
(imported inside ``take_action``), turn the results into columns.  A float
port is a neutron port tagged ``nodeops-float``.
"""

import argparse

from osc_lib.cli import parseractions

from osc_nodeops.v1 import base

PORT_COLUMNS = (
    ('id', 'ID'), ('name', 'Name'), ('network_id', 'Network'),
    ('addresses', 'Addresses'), ('mac_address', 'MAC Address'),
    ('server_id', 'Server ID'), ('server_name', 'Server Name'),
    ('binding_host', 'Binding Host'), ('status', 'Status'),
    ('description', 'Description'), ('tags', 'Tags'),
)


def _tcp_port(text):
    value = base.positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError('must be at most 65535, got %d'
                                         % value)
    return value


def _show(row, extra=()):
    """ShowOne columns of a port row (plus EXTRA (key, label) pairs)."""
    pairs = list(PORT_COLUMNS) + list(extra)
    values = []
    for key, _label in pairs:
        value = row.get(key)
        if isinstance(value, list):
            value = ', '.join(str(v) for v in value) if value else ''
        values.append(value)
    return tuple(label for _k, label in pairs), tuple(values)


def _add_timeout(parser, default):
    parser.add_argument(
        '--timeout', metavar='<seconds>', type=base.positive_float,
        default=default,
        help='How long to wait for nova and neutron (default %s)' % default)


class CreatePortFloat(base.NodeOpsShowOne):
    """Create a float port: a port meant to outlive servers.

    The port is tagged ``nodeops-float`` so the other ``port float``
    commands recognise it; name it by the FQDN its address will carry.
    Use it for a new server with ``openstack server create --nic
    port-id=PORT``, or ``openstack port float attach``.
    """

    def get_parser(self, prog_name):
        parser = super(CreatePortFloat, self).get_parser(prog_name)
        parser.add_argument('name', metavar='<name>',
                            help='Port name (the FQDN of its address)')
        parser.add_argument('--network', metavar='<network>', required=True,
                            help='Network (name or ID)')
        parser.add_argument(
            '--fixed-ip', metavar='subnet=<subnet>,ip-address=<ip-address>',
            action=parseractions.MultiKeyValueAction, dest='fixed_ips',
            optional_keys=['subnet', 'ip-address'],
            help='Desired address and/or subnet (repeat for several); '
                 'default: neutron picks one address per IP version')
        parser.add_argument('--description', metavar='<description>',
                            help='Port description')
        base.add_api_timeout_argument(parser)
        return parser

    def take_action(self, parsed_args):
        from osc_nodeops.ops import port_float
        return _show(port_float.create(
            self.conn, parsed_args.name, parsed_args.network,
            parsed_args.fixed_ips, parsed_args.description,
            events=self.events))


class ListPortFloat(base.NodeOpsLister):
    """List float ports with their addresses, server, host and status."""

    def get_parser(self, prog_name):
        parser = super(ListPortFloat, self).get_parser(prog_name)
        parser.add_argument('--network', metavar='<network>',
                            help='Only ports of this network (name or ID)')
        base.add_api_timeout_argument(parser)
        return parser

    def take_action(self, parsed_args):
        from osc_nodeops.ops import port_float
        rows = port_float.list_ports(self.conn, parsed_args.network)
        keys = ('id', 'name', 'network_id', 'addresses', 'server_id',
                'server_name', 'binding_host', 'status')
        labels = ('ID', 'Name', 'Network', 'Addresses', 'Server ID',
                  'Server Name', 'Binding Host', 'Status')
        out = []
        for row in rows:
            out.append(tuple(', '.join(row[k]) if k == 'addresses'
                             else row[k] for k in keys))
        return labels, out


class AttachPortFloat(base.NodeOpsShowOne):
    """Attach a detached float port to an existing server.

    Goes through nova (``server add port``) and waits until the port is
    ACTIVE and the server shows its addresses.
    """

    def get_parser(self, prog_name):
        parser = super(AttachPortFloat, self).get_parser(prog_name)
        parser.add_argument('port', metavar='<port>',
                            help='Float port (name or ID)')
        parser.add_argument('server', metavar='<server>',
                            help='Server (name or ID)')
        _add_timeout(parser, 120.0)
        base.add_api_timeout_argument(parser)
        return parser

    def take_action(self, parsed_args):
        from osc_nodeops.ops import port_float
        return _show(port_float.attach(
            self.conn, parsed_args.port, parsed_args.server,
            timeout=parsed_args.timeout, events=self.events))


class DetachPortFloat(base.NodeOpsShowOne):
    """Take a float port off its server, keeping it and its addresses.

    Goes through nova (``server remove port``), so nova forgets the
    interface and unbinds the port; the server can then be deleted and the
    port reused.  Refuses, changing nothing, a port nova may have created
    itself: nova deletes those on detach.
    """

    def get_parser(self, prog_name):
        parser = super(DetachPortFloat, self).get_parser(prog_name)
        parser.add_argument('port', metavar='<port>',
                            help='Float port (name or ID)')
        _add_timeout(parser, 120.0)
        base.add_api_timeout_argument(parser)
        return parser

    def take_action(self, parsed_args):
        from osc_nodeops.ops import port_float
        row = port_float.detach(self.conn, parsed_args.port,
                                timeout=parsed_args.timeout,
                                events=self.events)
        return _show(row, [('detached_from', 'Detached From')])


class MovePortFloat(base.NodeOpsShowOne):
    """Move a float port to another server, keeping its addresses.

    Detaches it from its current server through nova, then attaches it to
    SERVER and waits until it is ACTIVE there.  If the attach fails the port
    stays detached and intact, and the error says so.
    """

    def get_parser(self, prog_name):
        parser = super(MovePortFloat, self).get_parser(prog_name)
        parser.add_argument('port', metavar='<port>',
                            help='Float port (name or ID)')
        parser.add_argument('server', metavar='<server>',
                            help='Target server (name or ID)')
        _add_timeout(parser, 120.0)
        base.add_api_timeout_argument(parser)
        return parser

    def take_action(self, parsed_args):
        from osc_nodeops.ops import port_float
        row = port_float.move(self.conn, parsed_args.port,
                              parsed_args.server, timeout=parsed_args.timeout,
                              events=self.events)
        return _show(row, [('moved_from', 'Moved From')])


class RecoverPortFloat(base.NodeOpsShowOne):
    """Get back an address lost with a deleted server, as a float port.

    Asks neutron for the address directly; where policy forbids that
    (non-admin on a shared network), creates ports on the address's subnet
    until one gets it, at most --max-attempts, keeps and renames that one
    and deletes every other port it created, also on error and Ctrl-C.
    """

    def get_parser(self, prog_name):
        parser = super(RecoverPortFloat, self).get_parser(prog_name)
        parser.add_argument('ip', metavar='<ip-address>',
                            help='The address to recover')
        parser.add_argument('--network', metavar='<network>', required=True,
                            help='Network of the address (name or ID)')
        parser.add_argument('--max-attempts', metavar='<count>',
                            type=base.positive_int, default=20,
                            help='Most ports the loop creates (default 20)')
        parser.add_argument('--name', metavar='<name>',
                            help='Name of the kept port (default '
                                 'recovered-<ip-address>)')
        parser.add_argument('--description', metavar='<description>',
                            help='Description of the kept port')
        base.add_api_timeout_argument(parser)
        return parser

    def take_action(self, parsed_args):
        from osc_nodeops.ops import port_float
        row = port_float.recover(self.conn, parsed_args.ip,
                                 parsed_args.network,
                                 max_attempts=parsed_args.max_attempts,
                                 name=parsed_args.name,
                                 description=parsed_args.description,
                                 events=self.events)
        return _show(row, [('method', 'Method'), ('attempts', 'Attempts'),
                           ('deleted', 'Ports Deleted')])


class CheckPortFloat(base.NodeOpsLister):
    """Check that this machine can open a TCP connection to each address.

    One row per address of the port; exits 1 if any address did not accept
    the connection within --timeout.
    """

    def get_parser(self, prog_name):
        parser = super(CheckPortFloat, self).get_parser(prog_name)
        parser.add_argument('port', metavar='<port>',
                            help='Float port (name or ID)')
        parser.add_argument('--tcp-port', metavar='<tcp-port>',
                            type=_tcp_port, default=22,
                            help='TCP port to connect to (default 22)')
        parser.add_argument('--timeout', metavar='<seconds>',
                            type=base.positive_float, default=2.0,
                            help='Connect timeout per address (default 2)')
        base.add_api_timeout_argument(parser)
        return parser

    def take_action(self, parsed_args):
        from osc_nodeops.ops import port_float
        rows = port_float.check(self.conn, parsed_args.port,
                                tcp_port=parsed_args.tcp_port,
                                timeout=parsed_args.timeout)
        if any(r['result'] != 'open' for r in rows):
            self.exit_status = base.EXIT_INCOMPLETE
        keys = ('address', 'ip_version', 'tcp_port', 'result', 'detail',
                'seconds')
        labels = ('Address', 'IP Version', 'TCP Port', 'Result', 'Detail',
                  'Seconds')
        return labels, [tuple(r[k] for k in keys) for r in rows]
