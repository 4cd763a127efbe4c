"""``openstack compute node list`` and ``openstack compute node maintain``.

cliff classes only: parse arguments, call one ops entry point (imported
inside ``take_action``), turn its report into columns.
"""

from osc_nodeops import errors
from osc_nodeops.v1 import base
from osc_nodeops.v1 import options


class ListNode(options.Scope, base.NodeOpsLister):
    """List the compute hosts as an operator needs them for maintenance.

    One row per compute host: the nova-compute service's status, state,
    last report and disabled reason (the columns of ``compute service
    list``) and the osc-nodeops drain/maintain lease that holds the host:
    two calls, whatever the size of the cloud.  --long adds forced_down,
    the lease's start and expiry, the host's instances and running
    instances, and the migrations in flight from and to it.
    """

    def get_parser(self, prog_name):
        parser = super(ListNode, self).get_parser(prog_name)
        parser.add_argument(
            '--host', dest='hosts', metavar='<host>', action='append',
            default=[], help='Only this compute host (repeatable)')
        parser.add_argument(
            '--status', choices=('enabled', 'disabled'),
            help='Only hosts whose nova-compute service has this status')
        parser.add_argument(
            '--state', choices=('up', 'down'),
            help='Only hosts whose nova-compute service is in this state')
        parser.add_argument(
            '--leased', action='store_true',
            help='Only hosts an osc-nodeops run holds (a lease, even an '
                 'expired one)')
        parser.add_argument(
            '--long', action='store_true',
            help='Add forced_down, the lease\'s start and expiry, the '
                 'instance counts and the migrations in flight (per host '
                 'for a few hosts, else one listing of every server)')
        return parser

    def request(self, parsed_args):
        from osc_nodeops.ops import node_list
        a = parsed_args
        req = node_list.Request(
            hosts=tuple(a.hosts), aggregate=a.aggregate,
            zone=a.availability_zone, status=a.status, state=a.state,
            leased=a.leased, long=a.long)
        req.validate()
        return req

    def take_action(self, parsed_args):
        from osc_nodeops.ops import node_list
        req = self.request(parsed_args)
        rows = node_list.run(self.conn, req, events=self.events)
        return ((node_list.LONG_COLUMNS if req.long else node_list.COLUMNS),
                [r.row(long=req.long) for r in rows])


class MaintainNode(options.Moves, options.Executor, options.DryRun,
                   options.BreakLease, options.Scope, options.EventsFile,
                   options.ApiTimeout, base.NodeOpsLister):
    """Rolling maintenance: drain, your step, wait, check, undrain, in waves.

    For each wave of at most --max-hosts hosts (fewest instances first
    unless --order says otherwise): drain them as ``compute node drain``
    does, run --exec on each (``{host}`` is replaced by the host name,
    shell-quoted), wait until its nova-compute is up with a heartbeat newer
    than the step, run --check, undrain it (and with --migrate-back bring
    its servers home).  The first host that fails stops the run
    (--keep-going goes on with the others) and stays disabled with a reason
    that says why.  Never more than --max-hosts hosts of the scope are out
    of service at once, every disabled or down host included; hosts that
    someone else disabled are left alone (--include-disabled for named
    ones).  The progress is kept in the cloud (host aggregate
    nodeops-maintain-<campaign>, no hosts): rerun the same command from
    any machine and it goes on where a run stopped; a finished or
    interrupted --exec runs again only with --rerun-exec HOST.  SIGTERM and
    SIGHUP act like Ctrl-C.  The drain's options (--on-timeout, --retries,
    --fallback, --exclude, ...) apply to every host's drain and move back;
    --dry-run shows the waves, each host's drain plan and the steps that
    would run, and changes nothing.
    """

    aggregate_help = 'Every host of this aggregate'
    zone_help = 'Every host of this availability zone'
    move_options = options.Moves.drain_options
    move_suspended_help = ('Move SUSPENDED servers: resume, live-migrate, '
                           'suspend again (default: a host holding one is '
                           'refused)')
    allow_skipped_help = ('Maintain a host even if the drain leaves servers '
                          'on it (ERROR, SUSPENDED, locked...); default: its '
                          'wave is refused before anything changes')
    executor_options = ('max_parallel', 'timeout', 'retries',
                        'poll_interval', 'exclude')
    parallel_help = 'Servers in flight at once per host (default 4)'
    retries_help = ('Retry a refused, failed or aborted move N times '
                    '(default 1), a live migration on another host than '
                    'the one it failed to')
    exclude_help = ('Do not move this server (name or ID; repeatable): its '
                    'host\'s wave is refused unless --allow-skipped')
    dry_run_help = ('Show the waves, each host\'s drain plan (what moves '
                    'how, what stays, what does not fit) and the commands '
                    'that would run; change nothing')
    poll_help = ('Seconds between two looks at a host: while it is drained, '
                 'and while waiting for its nova-compute to be up again '
                 '(default 2)')
    break_lease_help = ('Take over hosts another osc-nodeops run held when '
                        'this run started (only when that run is gone); '
                        'never one leased after')

    def get_parser(self, prog_name):
        parser = super(MaintainNode, self).get_parser(prog_name)
        parser.add_argument('hosts', metavar='<host>', nargs='*',
                            help='Compute hosts to maintain')
        parser.add_argument(
            '--max-hosts', type=options.positive_int, default=1, metavar='K',
            help='Hosts out of service at once, at most (default 1; hosts '
                 'disabled by someone else count)')
        parser.add_argument(
            '--exec', dest='exec_cmd', metavar='<command>',
            help='The maintenance step, run by /bin/sh for each host once '
                 'drained; {host} is replaced by the host name (quoted)')
        parser.add_argument(
            '--exec-env', dest='exec_env', metavar='<name>',
            action='append', default=[],
            help='Pass this environment variable to --exec and --check '
                 '(repeatable; e.g. SSH_AUTH_SOCK).  Steps get only PATH, '
                 'HOME, LANG, TERM and these: never OS_* unless named')
        parser.add_argument(
            '--exec-timeout', type=options.positive_float, default=None,
            metavar='SECONDS', help='How long --exec may run (default 3600)')
        parser.add_argument(
            '--check', dest='check_cmd', metavar='<command>',
            help='Run after the host is up again; a non-zero exit leaves '
                 'the host disabled')
        parser.add_argument(
            '--check-timeout', type=options.positive_float, default=None,
            metavar='SECONDS', help='How long --check may run (default 600)')
        parser.add_argument(
            '--up-timeout', type=options.positive_float, default=900.0,
            metavar='SECONDS',
            help='How long to wait for nova-compute up with a fresh '
                 'heartbeat after --exec (default 900)')
        parser.add_argument('--migrate-back', action='store_true',
                            help='Bring each host\'s servers home')
        parser.add_argument('--keep-going', action='store_true',
                            help='Go on with the other hosts after a '
                                 'failure')
        parser.add_argument(
            '--order', choices=('fewest', 'given', 'name'), default='fewest',
            help='Host order: fewest instances first (default), as given, '
                 'or by name')
        parser.add_argument(
            '--campaign', metavar='<name>',
            help='The name of this campaign\'s progress record in the '
                 'cloud (host aggregate nodeops-maintain-<name>, no hosts, '
                 'admin-only); default: from the hosts, aggregate or zone. '
                 'A rerun from any machine goes on where a run stopped')
        parser.add_argument(
            '--state', dest='state_file', metavar='<file>',
            help='A local cache of the progress (the record in the cloud '
                 'is what counts)')
        parser.add_argument(
            '--rerun-exec', metavar='<host>', action='append', default=[],
            help='Run --exec again on this host although an earlier run '
                 'finished it or started it and was stopped (repeatable)')
        parser.add_argument(
            '--include-disabled', action='store_true',
            help='Maintain the named hosts that someone else disabled (by '
                 'default they are left alone); each is left disabled with '
                 'its own reason at the end')
        return parser

    def request(self, parsed_args):
        from osc_nodeops.ops import drain
        from osc_nodeops.ops import maintain
        a = parsed_args
        if not (a.hosts or a.aggregate or a.availability_zone):
            raise errors.UsageError('name hosts, or give --aggregate or '
                                    '--availability-zone')
        if a.hosts and (a.aggregate or a.availability_zone):
            raise errors.UsageError('name hosts or give --aggregate / '
                                    '--availability-zone, not both')
        if len(set(a.hosts)) != len(a.hosts):
            raise errors.UsageError('a host is named twice')
        if a.exec_timeout is not None and a.exec_cmd is None:
            raise errors.UsageError('--exec-timeout only goes with --exec')
        if a.check_timeout is not None and a.check_cmd is None:
            raise errors.UsageError('--check-timeout only goes with --check')
        if a.exec_env and not (a.exec_cmd or a.check_cmd):
            raise errors.UsageError('--exec-env only goes with --exec or '
                                    '--check')
        if a.rerun_exec and a.exec_cmd is None:
            raise errors.UsageError('--rerun-exec only goes with --exec')
        req = maintain.Request(
            hosts=tuple(a.hosts), aggregate=a.aggregate,
            zone=a.availability_zone, max_hosts=a.max_hosts,
            exec_cmd=a.exec_cmd,
            exec_timeout=(maintain.Request.exec_timeout
                          if a.exec_timeout is None else a.exec_timeout),
            check_cmd=a.check_cmd,
            check_timeout=(maintain.Request.check_timeout
                           if a.check_timeout is None else a.check_timeout),
            up_timeout=a.up_timeout, migrate_back=a.migrate_back,
            keep_going=a.keep_going, order=a.order, state_file=a.state_file,
            rerun_exec=tuple(a.rerun_exec), exec_env=tuple(a.exec_env),
            campaign=a.campaign, include_disabled=a.include_disabled,
            poll_interval=a.poll_interval, dry_run=a.dry_run,
            drain_options=drain.Options(
                break_lease=a.break_lease,
                **self.moves_request(a), **self.executor_request(a)))
        maintain.check_request(req)
        return req

    def take_action(self, parsed_args):
        from osc_nodeops.ops import maintain
        req = self.request(parsed_args)
        report = maintain.run(self.conn, req, events=self.events)
        self.exit_status = report.exit_status
        return maintain.COLUMNS, [h.row() for h in report.hosts]
