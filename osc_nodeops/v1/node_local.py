"""Compute-node-local commands: ``compute node stop-service | start-service
| copy-instances`` (runbook S5, S24).

They run on the node itself, as root, and make no API call (no credentials
needed).  cliff classes only; the work is in ``osc_nodeops.ops``.
"""

from osc_nodeops.v1 import base
from osc_nodeops.v1 import options


class _ServiceCommand(options.DryRun, base.NodeOpsLister):

    auth_required = False
    direction: str  # 'stop' or 'start': set by each leaf

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument(
            '--service', default='nova-compute', metavar='NAME',
            help='Service name (default nova-compute)')
        return parser

    def request(self, parsed_args):
        return dict(direction=self.direction, service=parsed_args.service,
                    dry_run=parsed_args.dry_run)

    def take_action(self, parsed_args):
        from osc_nodeops.ops import local_service as ops

        req = self.request(parsed_args)
        report = ops.run(req['direction'], req['service'],
                         dry_run=req['dry_run'], events=self.events)
        self.exit_status = report.exit_status
        return ops.COLUMNS, [r.row() for r in report.rows]


class StopService(_ServiceCommand):
    """Stop nova-compute on this node and keep it stopped.

    With systemd: systemctl stop, then mask (configuration management
    cannot start a masked unit).  With init files: stop, then move
    /etc/init/nova-compute.conf and /etc/init.d/nova-compute to
    /var/lib/osc-nodeops/held-init-files (as the Operations Guide does).
    Refuses where it cannot tell how the service is managed.  Undo with
    "compute node start-service".
    """

    direction = 'stop'


class StartService(_ServiceCommand):
    """Start nova-compute on this node again, undoing stop-service.

    With systemd: systemctl unmask, then start; with init files: move them
    back from the hold directory, then start.
    """

    direction = 'start'


class CopyInstances(base.NodeOpsLister):
    """Copy a failed node's instance directories and _base/ to this node.

    NOT SUPPORTED BY NOVA: the Operations Guide's last resort for a dead
    node without shared storage.  Copies instance-* and
    UUID-named directories and _base/ from --from (the dead node's
    /var/lib/nova/instances, mounted somewhere) to --to, never overwriting
    anything: an existing file with the same content is left as it is, one
    with other content is reported as a conflict.  Ownership, modes and
    times are kept, links stay links, sparse files stay sparse, every copy
    is verified by SHA-256.  Without --execute it is a dry run: it says
    what it would copy and writes nothing.
    """

    auth_required = False

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument(
            '--from', dest='src', required=True, metavar='DIR',
            help='The dead node\'s instances directory (mounted here)')
        parser.add_argument(
            '--to', dest='dst', required=True, metavar='DIR',
            help='This node\'s instances directory '
                 '(e.g. /var/lib/nova/instances)')
        parser.add_argument(
            '--entry', dest='only', action='append', metavar='NAME',
            help='Copy only this entry (instance directory or _base); '
                 'repeatable.  Default: all of them')
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument(
            '--dry-run', action='store_true',
            help='Show what would be copied and any conflicts; write '
                 'nothing (the default)')
        mode.add_argument(
            '--execute', action='store_true',
            help='Copy (without it nothing is written)')
        return parser

    def request(self, parsed_args):
        return dict(src_root=parsed_args.src, dst_root=parsed_args.dst,
                    dry_run=not parsed_args.execute, only=parsed_args.only)

    def take_action(self, parsed_args):
        from osc_nodeops.ops import copy_instances as ops

        report = ops.run(events=self.events, **self.request(parsed_args))
        self.exit_status = report.exit_status
        return ops.COLUMNS, [r.row() for r in report.rows]
