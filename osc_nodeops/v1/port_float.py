"""``openstack port float create|list|attach|detach|move|recover|check``.

cliff classes only: parse arguments, call ``osc_nodeops.ops.port_float``
(imported inside ``take_action``), turn the results into columns.  A float
port is a neutron port tagged ``nodeops-float``.
"""

from cliff import columns
from osc_lib.cli import format_columns
from osc_lib.cli import parseractions
from osc_lib.command import command

from osc_nodeops.v1 import base
from osc_nodeops.v1 import options

PORT_COLUMNS = (
    ('id', 'ID'), ('name', 'Name'), ('network_id', 'Network'),
    ('addresses', 'Addresses'), ('mac_address', 'MAC Address'),
    ('server_id', 'Server ID'), ('server_name', 'Server Name'),
    ('binding_host', 'Binding Host'), ('status', 'Status'),
    ('description', 'Description'), ('tags', 'Tags'),
)


class _Addresses(columns.FormattableColumn):
    """A port's addresses in their order (IPv4 first): comma-separated
    in a table, a list in ``-f json`` (osc-lib's ``ListColumn`` would
    sort them)."""

    def human_readable(self):
        return ', '.join(str(v) for v in self._value)

    def machine_readable(self):
        return list(self._value)


def _value(key, value):
    """A row's field as a cliff value: lists stay lists in ``-f json``,
    as in ``openstack port show``."""
    if key == 'addresses':
        return _Addresses(value or [])
    if isinstance(value, list):
        return format_columns.ListColumn(value)
    return value


def _show(row, extra=()):
    """ShowOne columns of a port row (plus EXTRA (key, label) pairs)."""
    pairs = list(PORT_COLUMNS) + list(extra)
    return (tuple(label for _k, label in pairs),
            tuple(_value(key, row.get(key)) for key, _label in pairs))


def _address(text):
    """A usage error unless TEXT is an IP address (before any cloud
    call)."""
    import ipaddress
    try:
        ipaddress.ip_address(text)
    except ValueError:
        raise base.UsageError('%r is not an IP address' % (text,))


class _WaitTimeout(command.Command):
    """``--timeout``: how long to wait for nova and neutron."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument(
            '--timeout', metavar='<seconds>', type=options.positive_float,
            default=120.0,
            help='How long to wait for nova and neutron (default 120)')
        return parser


class CreatePortFloat(options.ApiTimeout, base.NodeOpsShowOne):
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
        return parser

    def request(self, parsed_args):
        a = parsed_args
        for spec in a.fixed_ips or ():
            if spec.get('ip-address'):
                _address(spec['ip-address'])
        return dict(name=a.name, network=a.network, fixed_ips=a.fixed_ips,
                    description=a.description)

    def take_action(self, parsed_args):
        from osc_nodeops.ops import port_float
        req = self.request(parsed_args)
        return _show(port_float.create(
            self.conn, req['name'], req['network'], req['fixed_ips'],
            req['description'], events=self.events))


class ListPortFloat(options.ApiTimeout, base.NodeOpsLister):
    """List float ports: addresses, server, host, status and tags."""

    def get_parser(self, prog_name):
        parser = super(ListPortFloat, self).get_parser(prog_name)
        parser.add_argument('--network', metavar='<network>',
                            help='Only ports of this network (name or ID)')
        return parser

    def request(self, parsed_args):
        return dict(network=parsed_args.network)

    def take_action(self, parsed_args):
        from osc_nodeops.ops import port_float
        req = self.request(parsed_args)
        rows = port_float.list_ports(self.conn, req['network'])
        keys = ('id', 'name', 'network_id', 'addresses', 'server_id',
                'server_name', 'binding_host', 'status', 'tags')
        labels = ('ID', 'Name', 'Network', 'Addresses', 'Server ID',
                  'Server Name', 'Binding Host', 'Status', 'Tags')
        return labels, [tuple(_value(k, row[k]) for k in keys)
                        for row in rows]


class _PortCommand(_WaitTimeout, options.ApiTimeout, base.NodeOpsShowOne):
    """A float port (and, with ``server_help``, a server) and how long to
    wait for nova and neutron: attach, detach, move."""

    server_help: str | None = None

    def get_parser(self, prog_name):
        parser = super(_PortCommand, self).get_parser(prog_name)
        parser.add_argument('port', metavar='<port>',
                            help='Float port (name or ID)')
        if self.server_help:
            parser.add_argument('server', metavar='<server>',
                                help=self.server_help)
        return parser

    def request(self, parsed_args):
        req = dict(port_ref=parsed_args.port, timeout=parsed_args.timeout)
        if self.server_help:
            req['server_ref'] = parsed_args.server
        return req


class AttachPortFloat(_PortCommand):
    """Attach a detached float port to an existing server.

    Goes through nova (``server add port``) and waits until the port is
    ACTIVE and the server shows its addresses.
    """

    server_help = 'Server (name or ID)'

    def take_action(self, parsed_args):
        from osc_nodeops.ops import port_float
        req = self.request(parsed_args)
        return _show(port_float.attach(self.conn, events=self.events, **req))


class DetachPortFloat(_PortCommand):
    """Take a float port off its server, keeping it and its addresses.

    Goes through nova (``server remove port``), so nova forgets the
    interface and unbinds the port; the server can then be deleted and the
    port reused.  Refuses, changing nothing, a port nova may have created
    itself: nova deletes those on detach.
    """

    def take_action(self, parsed_args):
        from osc_nodeops.ops import port_float
        req = self.request(parsed_args)
        row = port_float.detach(self.conn, events=self.events, **req)
        return _show(row, [('detached_from', 'Detached From')])


class MovePortFloat(_PortCommand):
    """Move a float port to another server, keeping its addresses.

    Detaches it from its current server through nova, then attaches it to
    SERVER and waits until it is ACTIVE there.  If the attach fails the port
    stays detached and intact, and the error says so.
    """

    server_help = 'Target server (name or ID)'

    def take_action(self, parsed_args):
        from osc_nodeops.ops import port_float
        req = self.request(parsed_args)
        row = port_float.move(self.conn, events=self.events, **req)
        return _show(row, [('moved_from', 'Moved From')])


class RecoverPortFloat(options.ApiTimeout, base.NodeOpsShowOne):
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
                            type=options.positive_int, default=20,
                            help='Most ports the loop creates (default 20)')
        parser.add_argument('--name', metavar='<name>',
                            help='Name of the kept port (default '
                                 'recovered-<ip-address>)')
        parser.add_argument('--description', metavar='<description>',
                            help='Description of the kept port')
        return parser

    def request(self, parsed_args):
        a = parsed_args
        _address(a.ip)
        return dict(ip=a.ip, network=a.network,
                    max_attempts=a.max_attempts, name=a.name,
                    description=a.description)

    def take_action(self, parsed_args):
        from osc_nodeops.ops import port_float
        req = self.request(parsed_args)
        row = port_float.recover(self.conn, req.pop('ip'),
                                 req.pop('network'), events=self.events,
                                 **req)
        return _show(row, [('method', 'Method'), ('attempts', 'Attempts'),
                           ('deleted', 'Ports Deleted')])


class CheckPortFloat(options.ApiTimeout, base.NodeOpsLister):
    """Check that this machine can open a TCP connection to each address.

    One row per address of the port; exits 1 if any address did not accept
    the connection within --timeout.
    """

    def get_parser(self, prog_name):
        parser = super(CheckPortFloat, self).get_parser(prog_name)
        parser.add_argument('port', metavar='<port>',
                            help='Float port (name or ID)')
        parser.add_argument('--tcp-port', metavar='<tcp-port>',
                            type=options.tcp_port, default=22,
                            help='TCP port to connect to (default 22)')
        parser.add_argument('--timeout', metavar='<seconds>',
                            type=options.positive_float, default=2.0,
                            help='Connect timeout per address (default 2)')
        return parser

    def request(self, parsed_args):
        return dict(port_ref=parsed_args.port, tcp_port=parsed_args.tcp_port,
                    timeout=parsed_args.timeout)

    def take_action(self, parsed_args):
        from osc_nodeops.ops import port_float
        req = self.request(parsed_args)
        rows = port_float.check(self.conn, **req)
        if any(r['result'] != 'open' for r in rows):
            self.exit_status = base.EXIT_INCOMPLETE
        keys = ('address', 'ip_version', 'tcp_port', 'result', 'detail',
                'seconds')
        labels = ('Address', 'IP Version', 'TCP Port', 'Result', 'Detail',
                  'Seconds')
        return labels, [tuple(r[k] for k in keys) for r in rows]
