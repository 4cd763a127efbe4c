"""``openstack server recover-all`` and ``openstack compute node volumes``.

cliff classes only: parse arguments, call ``osc_nodeops.ops.recover`` or
``ops.volumes`` (imported inside ``take_action``), turn the results into
columns.
"""

from osc_nodeops import errors
from osc_nodeops.v1 import base
from osc_nodeops.v1 import columns
from osc_nodeops.v1 import options

UNDO_COLUMNS = ('Table', 'Restored', 'Already Back', 'Gone')
UNDO_DRY_RUN_COLUMNS = ('Table', 'Would Restore', 'Already Back', 'Gone')

# What each mode of recover-all takes besides the host (usage errors
# otherwise, before any cloud call).
DEAD_ONLY = ('target_host', 'force_down', 'confirm_fenced', 'fence_check',
             'via_db')
REBOOT_ONLY = ('hard',)
VIA_DB_EXECUTE_ONLY = ('journal',)
UNDO_TAKES = ('undo', 'dry_run', 'api_timeout', 'events_file') + \
    options.db_dests(('nova', 'neutron'))


class RecoverAll(options.DBSources, options.Executor, options.DryRun,
                 options.BreakLease, options.EventsFile, options.ApiTimeout,
                 columns.Views, base.NodeOpsLister):
    """Bring back every server of a host after a reboot or a failure.

    After a reboot (the default): the host's nova-compute must
    be up (a down service is refused: use --dead).  For every server on the
    host, all projects: SHUTOFF ones are started, ACTIVE ones whose power
    state is not running are rebooted, ERROR ones are hard rebooted; then
    each is waited for until ACTIVE with power state running.  A server
    that does not come back within --timeout, or goes to ERROR, is retried
    once with a hard reboot (re-creates the libvirt XML); --hard hard
    reboots from the start.

    Stopped on purpose: a SHUTOFF server is left stopped when the newest
    power-changing entry of its instance action log (server event list) is
    a "stop" made by a user.  nova's power-state sync stops servers whose
    guest vanished (what a host reboot does) from a service context, with no
    user on the action: those were running and are started.  --all starts
    every SHUTOFF server.

    Dead host (--dead): every server is evacuated through
    the API with bounded parallelism and verified (migration record done,
    host changed, the power state it had: from compute API 2.95 nova
    delivers evacuated servers stopped, so the ones that were running are
    started again).  The dead host's nova-compute must be reported down.
    If it is still up (or not yet reported down) this is refused: a host
    that still runs its servers would run each disk twice and corrupt it.

    Fencing: down is not powered off (a crashed nova-compute or a network
    partition leaves the servers running), so --dead (and --via-db) also
    needs evidence that the host is fenced, else it is refused and nothing
    changes: its nova-compute forced down by someone else (an external
    fencer such as Masakari with Pacemaker), or --confirm-fenced HOST (you
    say it is powered off, naming it again), or --fence-check CMD exiting
    0.  With that evidence --force-down forces a host not yet reported
    down.  Before the first evacuation the dead host's nova-compute is
    disabled with a reason naming the evacuation (a host someone else
    disabled is left as it is); its row says how to bring it back.

    Legacy path (--dead --via-db --target-host HOST): the guide's SQL in the
    nova cell DB (instances) and the neutron DB (ml2_port_bindings,
    ml2_port_binding_levels, for the ports of the moved servers only), then
    a hard reboot of each moved server that was running.  A dry run by
    default (prints the statements on stderr and the rows); --execute
    applies it in one transaction when both schemas are on one server,
    otherwise in two with the first undone if the second commit fails.  A
    journal of the previous values is written before the commit; --undo
    JOURNAL puts them back.  Each moved server's placement allocation is
    moved to the target's resource provider through placement's API (with
    the consumer generation; recorded in the journal, restored by --undo).

    Exit 0 when every server is back up (or was left alone on purpose), 1
    when something was not done (the rows say what), 2 on usage errors.
    """

    db_schemas = ('nova', 'neutron')
    default_columns = columns.RESULT_VIEW
    timeout_default = 300.0
    timeout_help = ('Per server: how long to wait for it (default 300); a '
                    'start or reboot still not back is then hard rebooted')
    retries_help = ('Retries after a failure (default 1; for start and '
                    'reboot the retry is a hard reboot)')
    dry_run_help = ('Print the plan and change nothing (--via-db is a dry '
                    'run unless --execute)')
    break_lease_help = (
        'Take the host from another osc-nodeops run whose lease is still '
        'live (compute node list shows it): only when that run is gone.  An '
        'expired lease is taken without it')

    def get_parser(self, prog_name):
        parser = super(RecoverAll, self).get_parser(prog_name)
        parser.add_argument(
            'host', metavar='<host>', nargs='?',
            help='Compute host whose servers to bring back')
        parser.add_argument(
            '--all', action='store_true', dest='start_all',
            help='Also start the SHUTOFF servers that their owners '
                 'stopped: after a reboot, and on their new host after '
                 '--dead (evacuate and --via-db alike)')
        parser.add_argument(
            '--hard', action='store_true',
            help='After a reboot (not with --dead): hard reboot from the '
                 'start instead of start/soft reboot')
        parser.add_argument(
            '--dead', action='store_true',
            help='The host is dead: evacuate its servers (see above)')
        parser.add_argument(
            '--target-host', metavar='<host>',
            help='--dead: evacuate to this host (default: the scheduler '
                 'chooses); required with --via-db')
        parser.add_argument(
            '--force-down', action='store_true',
            help='--dead: force the host\'s nova-compute service down '
                 'first.  Only for a fenced (powered off) host; needs '
                 '--confirm-fenced or --fence-check')
        parser.add_argument(
            '--confirm-fenced', metavar='<host>',
            help='--dead: the host name again (exactly the host being '
                 'recovered): you confirm it is powered off (fenced).  '
                 'Evacuating a host that still runs starts the same disk '
                 'twice and corrupts it')
        parser.add_argument(
            '--fence-check', metavar='<command>',
            help='--dead: a command that exits 0 when the host is powered '
                 'off, e.g. "ipmi-power-status-off {host}" ({host} is '
                 'replaced by the host name, always one argument; split '
                 'like a shell would, never run by one).  It runs with a '
                 'minimal environment (no OS_* variables), no input, its '
                 'output discarded.  Any other exit, or no answer within '
                 '--fence-timeout, refuses; nothing is changed')
        parser.add_argument(
            '--fence-timeout', type=options.positive_float,
            default=None, metavar='SECONDS',
            help='How long --fence-check may take (default 60)')
        parser.add_argument(
            '--reattach-volumes', action='store_true',
            help='Once a server is up, detach and re-attach each of its '
                 'volumes at the same device and check each is in-use '
                 'again.  Never on a server that is not up')
        parser.add_argument(
            '--via-db', action='store_true',
            help='--dead: the legacy SQL path instead of evacuate (dry run '
                 'unless --execute)')
        parser.add_argument(
            '--execute', action='store_true',
            help='--via-db: apply the move (default: show it)')
        parser.add_argument(
            '--journal', metavar='<path>',
            help='--via-db --execute: where to write the journal (default '
                 '$XDG_STATE_HOME/osc-nodeops/db-move-HOST-TIME.json); an '
                 'existing file is never overwritten')
        parser.add_argument(
            '--undo', metavar='<journal>',
            help='Put back the DB rows a --via-db move changed, from its '
                 'journal (rows changed since by others make it refuse); '
                 'with --dry-run: say what would be put back, change '
                 'nothing')
        return parser

    def request(self, parsed_args):
        """The ops request: an ``UndoRequest`` with --undo, else
        ``recover.Options``; usage errors before any cloud call."""
        from osc_nodeops.ops import recover
        a = parsed_args
        if a.undo:
            defaults = self.own_defaults()
            extra = sorted(dest for dest, value in vars(a).items()
                           if dest in defaults and dest not in UNDO_TAKES
                           and value != defaults[dest])
            if a.host or extra:
                raise errors.UsageError(
                    '--undo takes only the journal, the DB options and '
                    '--dry-run, not %s' % ('the host' if a.host else
                                           self.spelling(extra[0])))
            return recover.UndoRequest(
                a.undo, self.db_source(a, 'nova'),
                self.db_source(a, 'neutron'), dry_run=a.dry_run)
        if not a.via_db:
            self.refuse_db_options(a, '--via-db or --undo')
        if a.journal is not None and not (a.via_db and a.execute):
            raise errors.UsageError('--journal only goes with --via-db '
                                    '--execute (the journal of a DB move)')
        if a.dead and a.hard:
            raise errors.UsageError(
                '--hard is for a rebooted host; --dead evacuates (and '
                '--via-db hard reboots every moved server anyway)')
        if a.dead and a.target_host and a.target_host == a.host:
            raise errors.UsageError('--target-host is the dead host itself')
        if a.fence_timeout is not None and a.fence_check is None:
            raise errors.UsageError('--fence-timeout only goes with '
                                    '--fence-check')
        request = recover.Options(
            host=a.host, dead=a.dead, via_db=a.via_db, execute=a.execute,
            all=a.start_all, hard=a.hard, target_host=a.target_host,
            force_down=a.force_down, confirm_fenced=a.confirm_fenced,
            fence_check=a.fence_check,
            fence_timeout=(recover.Options.fence_timeout
                           if a.fence_timeout is None else a.fence_timeout),
            reattach_volumes=a.reattach_volumes, break_lease=a.break_lease,
            nova_db=self.db_source(a, 'nova') if a.via_db else None,
            neutron_db=self.db_source(a, 'neutron') if a.via_db else None,
            journal=a.journal, dry_run=a.dry_run,
            **self.executor_request(a))
        if not request.host:
            raise errors.UsageError('a host is required (or --undo JOURNAL)')
        recover.validate(request)
        return request

    def view(self, parsed_args, column_names):
        # --undo's four columns are all shown.
        return None if parsed_args.undo else self.default_columns

    def take_action(self, parsed_args):
        from osc_nodeops.ops import recover
        request = self.request(parsed_args)
        if parsed_args.undo:
            report = recover.undo(request, events=self.events,
                                  conn=self.conn)
            self.exit_status = report.exit_status
            return (UNDO_DRY_RUN_COLUMNS if report.dry_run else
                    UNDO_COLUMNS), [(r.table, r.restored, r.already, r.gone)
                                    for r in report.rows]
        return self.report_rows(recover.run(
            self.conn, request, events=self.events))


class NodeVolumes(options.DBSources, base.NodeOpsLister):
    """List the instance/volume pairs of a compute host.

    Through the APIs by default (nova volume attachments, cinder volumes
    and attachments).  --from-db reads them from the databases instead:
    nova ``instances`` joined with cinder ``volume_attachment`` and
    ``volumes`` (the guide joined ``cinder.volumes``; today's cinder keeps
    attachments in ``volume_attachment``), one query when both schemas are
    on one server.
    """

    db_schemas = ('nova', 'cinder')

    def get_parser(self, prog_name):
        parser = super(NodeVolumes, self).get_parser(prog_name)
        parser.add_argument('host', metavar='<host>', help='Compute host')
        parser.add_argument(
            '--from-db', action='store_true',
            help='Read the pairs from the nova and cinder databases')
        return parser

    def request(self, parsed_args):
        from osc_nodeops.ops import volumes
        a = parsed_args
        if not a.from_db:
            self.refuse_db_options(a, '--from-db')
        return volumes.Request(
            a.host, from_db=a.from_db,
            nova_db=self.db_source(a, 'nova') if a.from_db else None,
            cinder_db=self.db_source(a, 'cinder') if a.from_db else None)

    def take_action(self, parsed_args):
        from osc_nodeops.ops import volumes
        request = self.request(parsed_args)
        pairs = volumes.run(self.conn, request)
        return volumes.PAIR_COLUMNS, [volumes.pair_row(p) for p in pairs]
