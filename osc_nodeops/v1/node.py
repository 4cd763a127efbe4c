"""``openstack compute node drain | undrain | show``.

cliff classes only: parse arguments, call ``osc_nodeops.ops.drain`` /
``osc_nodeops.ops.node_show`` (imported inside ``take_action``), turn the
results into columns.
"""

from cliff import columns as cliff_columns

from osc_nodeops.v1 import base
from osc_nodeops.v1 import columns
from osc_nodeops.v1 import options

PLAN_COLUMNS = ('Blockers', 'Notes', 'Fits', 'Landing', 'Queue')
LADDER_COLUMNS = ('Policy', 'Ladder', 'Steps', 'Blame', 'Blame Detail')
AUDIT_COLUMNS = ('Audit',)

# What a table shows without --long (issue 23 item 1): after a run, what
# happened to each server; in a dry run, the plan.  -f json, yaml, csv and
# value give every column (``columns.Views``).
RESULT_VIEW = columns.RESULT_VIEW
PLAN_VIEW = ('ID', 'Name', 'Status Before', 'Method', 'Landing', 'Fits',
             'Ladder', 'Notes', 'Message')


class _Landing(cliff_columns.FormattableColumn):
    """A dry run's Landing with the move's place in its source's queue in
    a table (``c02 #3``: the third to leave its host); the host alone in
    ``-f json``, whose Queue field has the place."""

    def human_readable(self):
        host, place = self._value
        if host is None:
            return ''
        return '%s #%d' % (host, place) if place else host

    def machine_readable(self):
        return self._value[0]


class _Reasons(cliff_columns.FormattableColumn):
    """Pre-flight reasons: their codes in a table, one a line; every field
    in ``-f json``."""

    def human_readable(self):
        return '\n'.join(r['code'] for r in self._value)

    def machine_readable(self):
        return list(self._value)


class _Findings(cliff_columns.FormattableColumn):
    """The post-drain audit's findings about a row: codes in a table,
    every field in ``-f json`` ([] when the audit found nothing, null when
    none ran)."""

    def human_readable(self):
        if self._value is None:
            return ''
        return ', '.join(f['code'] for f in self._value)

    def machine_readable(self):
        return None if self._value is None else list(self._value)


def _plan_fields(item, dry_run):
    """Blockers (the reasons that rule out a move), Notes (the ones that
    block nothing), Fits, Landing: after a run, labelled as the plan's
    guess (Dest Compute says where the server went), and Queue: the
    move's place in its source host's queue (1: first)."""
    reasons = list(item.blockers)
    if item.capacity is not None:
        reasons.append(item.capacity)
    return (_Reasons([r.as_dict() for r in reasons if r.blocks]),
            _Reasons([r.as_dict() for r in reasons if not r.blocks]),
            item.fits,
            _Landing((item.landing, item.data.get('queue'))) if dry_run
            else columns.Planned(item.landing),
            item.data.get('queue'))


def _ladder_fields(item, message):
    """Policy, Ladder and Steps in run order, Blame, and Blame Detail
    unless the row's Message already says it (a skip's reason)."""
    detail = item.blame_detail
    if detail and detail in (message or ''):
        detail = ''
    return (item.policy, columns.Ordered(item.ladder),
            columns.Ordered(item.steps), item.blame, detail)


def _no_ladder():
    return (None, columns.Ordered([]), columns.Ordered([]), None, None)


class _MoveCommand(options.Moves, options.Executor, options.DryRun,
                   options.BreakLease, options.EventsFile, options.ApiTimeout,
                   columns.Views, base.NodeOpsLister):
    """Options and output shared by drain and undrain."""

    default_columns = RESULT_VIEW

    parallel_help = (
        'Servers in flight at once (default 4).  nova-compute runs live '
        'migrations from one host one at a time by default '
        '(max_concurrent_live_migrations) and queues the rest, so more '
        'parallelism overlaps API calls, scheduling, cold migrations and '
        'queueing; it does not push one host\'s memory copies faster')
    timeout_help = ('Per server: how long nova may work on a move '
                    '(default 600); a live migration\'s wait in nova\'s '
                    'queue behind others from the host is not counted')
    poll_help = ('Seconds between two looks at the host: one migration '
                 'list, and one server list when a move needs checking, for '
                 'all servers together (default 2)')
    exclude_help = 'Do not move this server (name or ID; repeatable)'
    dry_run_help = 'Print the plan and change nothing'

    def _request(self, parsed_args, hosts, **extra):
        from osc_nodeops.ops import drain
        request = drain.Options(
            hosts=tuple(hosts),
            target_host=getattr(parsed_args, 'target_host', None),
            break_lease=parsed_args.break_lease,
            dry_run=parsed_args.dry_run,
            **self.moves_request(parsed_args),
            **self.executor_request(parsed_args), **extra)
        drain.check_arguments(request.hosts, request)
        return request


class DrainNode(_MoveCommand):
    """Disable a compute host and move every server off it.

    Disables the host's nova-compute service, plans a method for every
    server on it (all projects): live migration for ACTIVE and PAUSED, cold
    migration (resize confirmed) for SHUTOFF, skip with a reason otherwise.
    Moves them with bounded parallelism, verifies each move (host changed
    AND migration record completed) and re-lists the host, then audits it:
    nova's servers and migration records (no resize left unconfirmed, no
    migration still running) and placement's allocations on its resource
    provider; each leftover is listed with the command that clears it
    (column Audit, or a row of its own).  Exit 0 only if the host ended up
    empty and its audit is clean (or only explicitly allowed skips are
    left).
    The origin host is recorded on each moved server (metadata
    nodeops:origin) for ``compute node undrain --migrate-back``.  Rerunning
    after an interruption picks up the moves in flight.  Several hosts are
    drained one after the other.
    """

    retries_help = ('Retry a refused, failed or aborted move N times '
                    '(default 1), a live migration on another host than '
                    'the one it failed to; the others go on meanwhile')
    move_options = options.Moves.drain_options

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
        return parser

    def request(self, parsed_args):
        return self._request(parsed_args, parsed_args.hosts,
                             reason=parsed_args.reason)

    def take_action(self, parsed_args):
        from osc_nodeops.ops import drain
        request = self.request(parsed_args)
        report = drain.drain(self.conn, request, events=self.events)
        names, rows = self.report_rows(report)
        found = drain.audit.row_findings(report)
        message = names.index('Message')
        rows = [row + _plan_fields(item, request.dry_run)
                + _ladder_fields(item, row[message])
                + (_Findings(found.get(id(item))),)
                for row, item in zip(rows, report.items)]
        # Leftovers about no row's server (an orphan allocation, ...).
        rows += [row + (_Reasons([]), _Reasons([]), None, None, None)
                 + _no_ladder()
                 + (_Findings(findings),)
                 for row, findings in drain.audit.extra_rows(report)]
        return names + PLAN_COLUMNS + LADDER_COLUMNS + AUDIT_COLUMNS, rows

    def view(self, parsed_args, column_names):
        return PLAN_VIEW if parsed_args.dry_run else RESULT_VIEW


class UndrainNode(_MoveCommand):
    """Re-enable a compute host, optionally moving its servers back.

    Re-enables the host's nova-compute service.  With ``--migrate-back``,
    moves home every server whose
    recorded origin (metadata nodeops:origin, set by ``compute node
    drain``) is this host, with the same verification, output and exit
    codes as drain, and clears the origin record of those that made it.
    """

    retries_help = ('Retry a refused, failed or aborted move back N times '
                    '(default 1), to this host again (a server goes back '
                    'only to its origin); the others go on meanwhile')

    def get_parser(self, prog_name):
        parser = super(UndrainNode, self).get_parser(prog_name)
        parser.add_argument(
            'host', metavar='<host>', help='Compute host to undrain')
        parser.add_argument(
            '--migrate-back', action='store_true',
            help='Move back every server drained from this host')
        return parser

    def request(self, parsed_args):
        given = self.given_moves(parsed_args)
        if given and not parsed_args.migrate_back:
            raise base.UsageError('%s only makes sense with --migrate-back '
                                  '(without it nothing is moved)' % given[0])
        return self._request(parsed_args, [parsed_args.host],
                             migrate_back=parsed_args.migrate_back)

    def take_action(self, parsed_args):
        from osc_nodeops.ops import drain
        request = self.request(parsed_args)
        return self.report_rows(drain.undrain(self.conn, request,
                                              events=self.events))


class ShowNode(base.NodeOpsShowOne):
    """Show a compute host as nova sees it.

    Service status and state, disabled reason, forced_down, last heartbeat
    and its age, hypervisor state, instance counts by status, the servers
    (name, ID, status, project) and the migrations in progress to or from
    the host; with --audit, what the post-drain audit finds left on it.
    With --require-up it exits 1 unless nova-compute is up with a fresh
    heartbeat: usable in a script to check a host.
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
            '--compute-log', default=None, metavar='FILE',
            help='nova-compute log for --local (default '
                 '/var/log/nova/nova-compute.log)')
        parser.add_argument(
            '--audit', action='store_true',
            help='Add the post-drain audit: is anything left on the host in '
                 'nova (servers, unconfirmed resizes, migrations not over) '
                 'or placement (allocations on its resource provider), each '
                 'with the command that clears it; exit 1 unless clean')
        parser.add_argument(
            '--require-up', action='store_true',
            help='Exit 1 (and say why on stderr) unless nova-compute is up, '
                 'not forced down, with a heartbeat at most 60 s old (and, '
                 'with --local, running and connected to AMQP); the fields '
                 'are printed either way')
        return parser

    def request(self, parsed_args):
        from osc_nodeops.ops import node_show
        a = parsed_args
        if a.compute_log is not None and not a.local:
            raise base.UsageError('--compute-log only goes with --local (the '
                                  'log is read on the node itself)')
        return node_show.Request(
            host=a.host, local=a.local,
            compute_log=a.compute_log or node_show.Request.compute_log,
            audit=a.audit, require_up=a.require_up)

    def take_action(self, parsed_args):
        from osc_nodeops.ops import node_show
        request = self.request(parsed_args)
        info = node_show.show(self.conn, request)
        if info.get('Audit Clean') is False:
            self.exit_status = base.EXIT_INCOMPLETE
        failure = node_show.check_failure(info) if request.require_up else None
        if failure:
            self.exit_status = base.EXIT_INCOMPLETE
            self.error_after_rows = 'check failed: %s' % failure
        return self.format(info)

    def format(self, info):
        """Dicts and lists of dicts as osc-lib shows them; a list in the
        order the runbook gives it, on one line (``columns.OrderedLine``)."""
        from osc_lib.cli import format_columns
        values = []
        for value in info.values():
            if isinstance(value, dict):
                value = format_columns.DictColumn(value)
            elif isinstance(value, list) and value and all(
                    isinstance(v, dict) for v in value):
                value = format_columns.ListDictColumn(value)
            elif isinstance(value, list):
                value = columns.OrderedLine(value)
            values.append(value)
        return tuple(info.keys()), tuple(values)
