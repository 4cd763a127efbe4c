"""``openstack server recover-all`` and ``openstack compute node volumes``.

cliff classes only: parse arguments, call ``osc_nodeops.ops.recover`` or
``ops.volumes`` (imported inside ``take_action``), turn the results into
columns.
"""

from osc_nodeops.v1 import base

DEFAULT_NOVA_CONF = '/etc/nova/nova.conf'
DEFAULT_NEUTRON_CONF = '/etc/neutron/neutron.conf'
DEFAULT_CINDER_CONF = '/etc/cinder/cinder.conf'
DB_SCHEMAS = ('nova', 'neutron', 'cinder')
UNDO_COLUMNS = ('Table', 'Restored', 'Already Back', 'Gone')
UNDO_DRY_RUN_COLUMNS = ('Table', 'Would Restore', 'Already Back', 'Gone')


def _env_var(name):
    """Where a DB URL may come from instead of the command line."""
    return 'NODEOPS_%s_DB' % name.upper()


def _add_db_arguments(parser, schemas):
    """--<name>-db URL and --<name>-conf PATH for each schema."""
    defaults = {'nova': DEFAULT_NOVA_CONF, 'neutron': DEFAULT_NEUTRON_CONF,
                'cinder': DEFAULT_CINDER_CONF}
    for name in schemas:
        what = 'nova cell' if name == 'nova' else name
        parser.add_argument(
            '--%s-db' % name, metavar='<url>',
            help='The %s database URL (mysql+pymysql://USER:PASSWORD@HOST/'
                 'DB[?ssl_ca=...]).  Default: the environment variable %s, '
                 'else [database] connection of --%s-conf.  Prefer the '
                 'config file or the variable: a URL on the command line '
                 'is visible to other local users (ps) and stays in shell '
                 'history.  The password is never printed, logged or put '
                 'in an error message' % (what, _env_var(name), name))
        parser.add_argument(
            '--%s-conf' % name, metavar='<path>', default=defaults[name],
            help='Where to read the %s database URL from when --%s-db is '
                 'not given (default %s)' % (what, name, defaults[name]))


class _DBCommand(base.NodeOpsLister):
    """A command taking --<name>-db URLs: their repr() hides the password
    before osc-lib logs the parsed arguments."""

    def run(self, parsed_args):
        from osc_nodeops.ops import recover
        for name in DB_SCHEMAS:
            value = getattr(parsed_args, '%s_db' % name, None)
            if value:
                setattr(parsed_args, '%s_db' % name, recover.SecretURL(value))
        return super(_DBCommand, self).run(parsed_args)

    @staticmethod
    def db_source(parsed_args, name):
        """--<name>-db, else $NODEOPS_<NAME>_DB, else --<name>-conf."""
        import os
        from osc_nodeops.ops import recover
        url = getattr(parsed_args, '%s_db' % name) or os.environ.get(
            _env_var(name))
        return recover.DBSource(url, getattr(parsed_args, '%s_conf' % name),
                                what=name)


class RecoverAll(_DBCommand):
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

    def get_parser(self, prog_name):
        parser = super(RecoverAll, self).get_parser(prog_name)
        parser.add_argument(
            'host', metavar='<host>', nargs='?',
            help='Compute host whose servers to bring back')
        parser.add_argument(
            '--all', action='store_true', dest='start_all',
            help='Also start SHUTOFF servers that their owners stopped')
        parser.add_argument(
            '--hard', action='store_true',
            help='Hard reboot from the start instead of start/soft reboot')
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
            '--fence-timeout', type=base.positive_float,
            default=60.0, metavar='SECONDS',
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
        parser.add_argument(
            '--break-lease', action='store_true',
            help='Take the host from another osc-nodeops run whose lease '
                 'is still live (compute node list shows it): only when '
                 'that run is gone.  An expired lease is taken without it')
        _add_db_arguments(parser, ('nova', 'neutron'))
        base.add_executor_arguments(
            parser, timeout=300.0,
            parallel_help='Servers in flight at once (default 4)',
            timeout_help='Per server: how long to wait for it (default '
                 '300); a start or reboot still not back is then hard '
                 'rebooted',
            retries_help='Retries after a failure (default 1; for start '
                 'and reboot the retry is a hard reboot)',
            poll_help='Seconds between two looks at the host (default 2)',
            exclude_help='Leave this server alone (name or ID; repeatable)',
            dry_run_help='Print the plan and change nothing (--via-db is a '
                 'dry run unless --execute)')
        return parser

    def take_action(self, parsed_args):
        from osc_nodeops.ops import recover
        if parsed_args.undo:
            report = recover.undo(recover.UndoRequest(
                parsed_args.undo, self.db_source(parsed_args, 'nova'),
                self.db_source(parsed_args, 'neutron'), host=parsed_args.host,
                dead=parsed_args.dead, execute=parsed_args.execute,
                dry_run=parsed_args.dry_run),
                events=self.events, conn=self.conn)
            self.exit_status = report.exit_status
            return (UNDO_DRY_RUN_COLUMNS if report.dry_run else
                    UNDO_COLUMNS), [(r.table, r.restored, r.already, r.gone)
                                    for r in report.rows]
        return self.report_rows(recover.run(
            self.conn, self._request(parsed_args), events=self.events))

    def _request(self, parsed_args):
        from osc_nodeops.ops import recover
        return recover.Options(
            host=parsed_args.host, dead=parsed_args.dead,
            via_db=parsed_args.via_db, execute=parsed_args.execute,
            all=parsed_args.start_all, hard=parsed_args.hard,
            target_host=parsed_args.target_host,
            force_down=parsed_args.force_down,
            confirm_fenced=parsed_args.confirm_fenced,
            fence_check=parsed_args.fence_check,
            fence_timeout=parsed_args.fence_timeout,
            reattach_volumes=parsed_args.reattach_volumes,
            break_lease=parsed_args.break_lease,
            nova_db=self.db_source(parsed_args, 'nova'),
            neutron_db=self.db_source(parsed_args, 'neutron'),
            journal=parsed_args.journal,
            **base.executor_options(parsed_args))


class NodeVolumes(_DBCommand):
    """List the instance/volume pairs of a compute host.

    Through the APIs by default (nova volume attachments, cinder volumes
    and attachments).  --from-db reads them from the databases instead:
    nova ``instances`` joined with cinder ``volume_attachment`` and
    ``volumes`` (the guide joined ``cinder.volumes``; today's cinder keeps
    attachments in ``volume_attachment``), one query when both schemas are
    on one server.
    """

    def get_parser(self, prog_name):
        parser = super(NodeVolumes, self).get_parser(prog_name)
        parser.add_argument('host', metavar='<host>', help='Compute host')
        parser.add_argument(
            '--from-db', action='store_true',
            help='Read the pairs from the nova and cinder databases')
        _add_db_arguments(parser, ('nova', 'cinder'))
        return parser

    def take_action(self, parsed_args):
        from osc_nodeops.ops import volumes
        pairs = volumes.run(self.conn, volumes.Request(
            parsed_args.host, from_db=parsed_args.from_db,
            nova_db=self.db_source(parsed_args, 'nova'),
            cinder_db=self.db_source(parsed_args, 'cinder')))
        return volumes.PAIR_COLUMNS, [volumes.pair_row(p) for p in pairs]
