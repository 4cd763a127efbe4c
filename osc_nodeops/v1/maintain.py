"""``openstack compute node list`` and ``openstack compute node maintain``.

cliff classes only: parse arguments, call one ops entry point (imported
inside ``take_action``), turn its report into columns.
"""

from osc_nodeops.v1 import base


class ListNode(base.NodeOpsLister):
    """List the compute hosts as an operator needs them for maintenance.

    One row per compute host: the nova-compute service's status, state,
    last report and disabled reason (the columns of ``compute service
    list``), forced_down, the osc-nodeops drain/maintain lease that holds
    the host (owner, since when), its instances and running instances, and
    the migrations in flight from and to it.  A few list calls, whatever
    the number of hosts.
    """

    def get_parser(self, prog_name):
        parser = super(ListNode, self).get_parser(prog_name)
        parser.add_argument(
            '--aggregate', metavar='<aggregate>',
            help='Only the hosts of this host aggregate (name or ID)')
        parser.add_argument(
            '--availability-zone', metavar='<zone>',
            help='Only the hosts of this availability zone')
        return parser

    def take_action(self, parsed_args):
        from osc_nodeops.ops import node_list
        rows = node_list.gather(self.conn.compute,
                                aggregate=parsed_args.aggregate,
                                zone=parsed_args.availability_zone)
        return node_list.COLUMNS, [r.row() for r in rows]

