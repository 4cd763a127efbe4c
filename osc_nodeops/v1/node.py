"""``openstack compute node drain | undrain | show``.

cliff classes only: parse arguments, call ``osc_nodeops.ops.drain`` /
``osc_nodeops.ops.node_show`` (imported inside ``take_action``), turn the
results into columns.
"""

import logging

from osc_lib import exceptions

from osc_nodeops.v1 import base

LOG = logging.getLogger(__name__)


def _input_errors():
    """Exceptions that mean 'bad input or no rights', nothing changed."""
    from openstack import exceptions as sdk_exc
    from osc_nodeops.ops import drain
    return (drain.UnknownHost, drain.BadInput, sdk_exc.ForbiddenException)


def _one_line(exc):
    from openstack import exceptions as sdk_exc
    if isinstance(exc, sdk_exc.ForbiddenException):
        return ('not allowed (this command needs the admin role): %s' %
                ' '.join(str(getattr(exc, 'details', None) or exc).split()))
    return str(exc)


class _MoveCommand(base.NodeOpsLister):
    """Options and output shared by drain and undrain."""

    def _add_move_arguments(self, parser):
        parser.add_argument(
            '--block-migration', choices=('auto', 'yes', 'no'),
            default='auto',
            help='Live migrations: copy local disks (yes), rely on shared '
                 'storage (no), or let nova decide per server (auto, the '
                 'default; needs compute API 2.25, else decided from the '
                 'server: volume-backed means no)')
        parser.add_argument(
            '--max-parallel', type=base.positive_int, default=4, metavar='N',
            help='Servers in flight at once (default 4).  nova-compute runs '
                 'live migrations from one host one at a time by default '
                 '(max_concurrent_live_migrations) and queues the rest, so '
                 'more parallelism overlaps API calls, scheduling, cold '
                 'migrations and queueing; it does not push one host\'s '
                 'memory copies faster')
        parser.add_argument(
            '--timeout', type=base.positive_float, default=600.0,
            metavar='SECONDS',
            help='Per server: how long a move may take (default 600)')
        parser.add_argument(
            '--on-timeout', choices=('abort', 'force-complete', 'leave'),
            default='abort',
            help='What to do with a live migration still running after '
                 '--timeout: abort it (the server stays where it was), '
                 'force-complete it (pause and finish), or leave it running '
                 '(a rerun picks it up).  Default: abort')
        parser.add_argument(
            '--retries', type=base.non_negative_int, default=1, metavar='N',
            help='Retry a refused or failed move N times (default 1); the '
                 'others go on meanwhile')
        parser.add_argument(
            '--exclude', action='append', default=[], metavar='SERVER',
            help='Do not move this server (name or ID; repeatable)')
        parser.add_argument(
            '--move-suspended', action='store_true',
            help='Move SUSPENDED servers: resume, live-migrate, suspend '
                 'again (default: skip them)')
        parser.add_argument(
            '--allow-skipped', action='store_true',
            help='Exit 0 even if servers were skipped (they are still '
                 'listed)')
        parser.add_argument(
            '--dry-run', action='store_true',
            help='Print the plan and change nothing')
        parser.add_argument(
            '--poll-interval', type=base.positive_float, default=2.0,
            metavar='SECONDS',
            help='Seconds between two looks at the host: one migration '
                 'list, and one server list when a move needs checking, for '
                 'all servers together (default 2)')
        base.add_api_timeout_argument(parser)
        parser.add_argument(
            '--break-lease', action='store_true',
            help='Take over the host from another osc-nodeops drain whose '
                 'lease (in the service\'s disabled reason) is still there: '
                 'only when that run is gone')

    def _options(self, parsed_args, **extra):
        from osc_nodeops.ops import drain
        return drain.Options(
            target_host=getattr(parsed_args, 'target_host', None),
            block_migration=parsed_args.block_migration,
            max_parallel=parsed_args.max_parallel,
            timeout=parsed_args.timeout,
            on_timeout=parsed_args.on_timeout,
            retries=parsed_args.retries,
            poll_interval=parsed_args.poll_interval,
            exclude=tuple(parsed_args.exclude),
            move_suspended=parsed_args.move_suspended,
            dry_run=parsed_args.dry_run,
            allow_skipped=parsed_args.allow_skipped,
            break_lease=parsed_args.break_lease,
            **extra)

    def _events(self):
        return base.event_printer(self.app)

    def _output(self, reports):
        from osc_nodeops.ops import engine
        rows = []
        ok = True
        for report in reports:
            rows.extend(item.row() for item in report.items)
            ok = ok and report.ok
        if not ok:
            self.exit_status = base.EXIT_INCOMPLETE
        return engine.ROW_COLUMNS, rows


class DrainNode(_MoveCommand):
    """Disable a compute host and move every server off it (runbook S1-S4).

    Disables the host's nova-compute service, plans a method for every
    server on it (all projects): live migration for ACTIVE and PAUSED, cold
    migration (resize confirmed) for SHUTOFF, skip with a reason otherwise.
    Moves them with bounded parallelism, verifies each move (host changed
    AND migration record completed) and re-lists the host.  Exit 0 only if
    the host ended up empty (or only explicitly allowed skips are left).
    The origin host is recorded on each moved server (metadata
    nodeops:origin) for ``compute node undrain --migrate-back``.  Rerunning
    after an interruption picks up the moves in flight.  Several hosts are
    drained one after the other.
    """

    def get_parser(self, prog_name):
        parser = super(DrainNode, self).get_parser(prog_name)
        parser.add_argument(
            'hosts', metavar='<host>', nargs='+',
            help='Compute host(s) to drain, one after the other')
        parser.add_argument(
            '--reason', metavar='<reason>',
            help='Disabled reason for the service (default: maintenance, '
                 'by whom and when; an already disabled service keeps its '
                 'reason unless this is given)')
        parser.add_argument(
            '--target-host', metavar='<host>',
            help='Move everything to this host (default: the scheduler '
                 'chooses)')
        self._add_move_arguments(parser)
        return parser

    def take_action(self, parsed_args):
        from osc_nodeops.ops import drain
        from osc_nodeops.ops import engine

        opts = self._options(parsed_args, reason=parsed_args.reason)
        compute = self.conn.compute
        try:
            services = drain.validate(compute, parsed_args.hosts, opts)
            drain.check_excludes(compute, parsed_args.hosts, opts.exclude)
        except _input_errors() as exc:
            raise exceptions.CommandError(_one_line(exc))
        features = engine.Features.from_proxy(compute)
        events = self._events()
        events('compute API microversion %s (server max %s)' % (
            features.effective, features.server_max))
        reports = drain.drain_hosts(
            compute, parsed_args.hosts, services, opts, features=features,
            events=events, reason_default=drain.default_reason(self.conn))
        return self._output(reports)


class UndrainNode(_MoveCommand):
    """Re-enable a compute host, optionally moving its servers back (S6-S7).

    Re-enables the host's nova-compute service (``--keep-disabled`` leaves
    it as it is).  With ``--migrate-back``, moves home every server whose
    recorded origin (metadata nodeops:origin, set by ``compute node
    drain``) is this host, with the same verification, output and exit
    codes as drain, and clears the origin record of those that made it.
    """

    def get_parser(self, prog_name):
        parser = super(UndrainNode, self).get_parser(prog_name)
        parser.add_argument(
            'host', metavar='<host>', help='Compute host to undrain')
        parser.add_argument(
            '--keep-disabled', action='store_true',
            help='Do not re-enable the service')
        parser.add_argument(
            '--migrate-back', action='store_true',
            help='Move back every server drained from this host')
        self._add_move_arguments(parser)
        return parser

    def take_action(self, parsed_args):
        from osc_nodeops.ops import drain
        from osc_nodeops.ops import engine

        if parsed_args.keep_disabled and parsed_args.migrate_back:
            raise base.UsageError(
                '--keep-disabled and --migrate-back cannot be combined: the '
                'scheduler does not place servers on a disabled host')
        opts = self._options(parsed_args,
                             keep_disabled=parsed_args.keep_disabled,
                             migrate_back=parsed_args.migrate_back)
        compute = self.conn.compute
        try:
            services = drain.validate(compute, [parsed_args.host], opts)
        except _input_errors() as exc:
            raise exceptions.CommandError(_one_line(exc))
        features = engine.Features.from_proxy(compute)
        events = self._events()
        try:
            report = drain.undrain_host(
                compute, parsed_args.host, services[parsed_args.host], opts,
                features=features, events=events)
        except drain.BadInput as exc:
            raise exceptions.CommandError(str(exc))
        if not parsed_args.migrate_back:
            events('%s nova-compute %s' % (parsed_args.host,
                                           report.service_note))
        return self._output([report])


class ShowNode(base.NodeOpsShowOne):
    """Show a compute host as nova sees it (runbook S8).

    Service status and state, disabled reason, forced_down, last heartbeat
    and its age, hypervisor state, instance counts by status and the
    migrations in progress to or from the host.
    """

    def get_parser(self, prog_name):
        parser = super(ShowNode, self).get_parser(prog_name)
        parser.add_argument('host', metavar='<host>',
                            help='Compute host to show')
        parser.add_argument(
            '--local', action='store_true',
            help='Run on the node itself: add whether the nova-compute '
                 'process runs, since when, and whether --compute-log has '
                 'a "Connected to AMQP server" line newer than its start')
        parser.add_argument(
            '--compute-log', default='/var/log/nova/nova-compute.log',
            metavar='FILE',
            help='nova-compute log for --local (default '
                 '/var/log/nova/nova-compute.log)')
        return parser

    def gather(self, parsed_args):
        """Ordered dict of the fields to show; extend to add sources."""
        from osc_nodeops.ops import node_show
        try:
            return node_show.gather(self.conn.compute, parsed_args.host)
        except _input_errors() as exc:
            raise exceptions.CommandError(_one_line(exc))

    def format(self, info):
        from osc_lib.cli import format_columns
        values = []
        for value in info.values():
            if isinstance(value, dict):
                value = format_columns.DictColumn(value)
            elif isinstance(value, list):
                value = format_columns.ListColumn(value)
            values.append(value)
        return tuple(info.keys()), tuple(values)

    def take_action(self, parsed_args):
        info = self.gather(parsed_args)
        if parsed_args.local:
            from osc_nodeops.ops import local_service
            fields, ok = local_service.local_report(
                log_file=parsed_args.compute_log, prefer=parsed_args.host)
            info.update(fields)
            info['Local OK'] = ok
        return self.format(info)
