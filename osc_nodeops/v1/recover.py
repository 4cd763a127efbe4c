"""``openstack server recover-all`` and ``openstack compute node volumes``.

cliff classes only: parse arguments, call ``osc_nodeops.ops.recover`` /
``ops.dbmove`` / ``ops.volumes`` (imported inside ``take_action``), turn
the results into columns.
"""

import logging

from osc_lib import exceptions

from osc_nodeops.v1 import base

LOG = logging.getLogger(__name__)

DEFAULT_NOVA_CONF = '/etc/nova/nova.conf'
DEFAULT_NEUTRON_CONF = '/etc/neutron/neutron.conf'
DEFAULT_CINDER_CONF = '/etc/cinder/cinder.conf'


def _add_db_arguments(parser, schemas):
    """--<name>-db URL and --<name>-conf PATH for each schema."""
    defaults = {'nova': DEFAULT_NOVA_CONF, 'neutron': DEFAULT_NEUTRON_CONF,
                'cinder': DEFAULT_CINDER_CONF}
    for name in schemas:
        what = 'nova cell' if name == 'nova' else name
        parser.add_argument(
            '--%s-db' % name, metavar='<url>',
            help='The %s database URL (mysql+pymysql://USER:PASSWORD@HOST/'
                 'DB).  Default: [database] connection of --%s-conf.  '
                 'Prefer the config file: a URL on the command line is '
                 'visible to other local users.  The password is never '
                 'printed, logged or put in an error message' % (what,
                                                                  name))
        parser.add_argument(
            '--%s-conf' % name, metavar='<path>', default=defaults[name],
            help='Where to read the %s database URL from when --%s-db is '
                 'not given (default %s)' % (what, name, defaults[name]))


class _SecretURL(str):
    """A DB URL that shows no password when repr()'d: osc-lib logs the
    parsed arguments (``run(Namespace(...))``) at debug level."""

    def __repr__(self):
        import re
        return repr(re.sub(r'(//[^:/@]*:)[^@]*@', r'\1***@', str(self)))


def _hide_db_urls(parsed_args):
    for name in ('nova_db', 'neutron_db', 'cinder_db'):
        value = getattr(parsed_args, name, None)
        if value:
            setattr(parsed_args, name, _SecretURL(value))


def _db_url(parsed_args, name):
    from osc_nodeops.db import url as url_mod
    return url_mod.resolve(getattr(parsed_args, '%s_db' % name),
                           getattr(parsed_args, '%s_conf' % name),
                           what=name)


class RecoverAll(base.NodeOpsLister):
    """Bring back every server of a host after a reboot or a failure.

    After a reboot (default; runbook S9, S10): the host's nova-compute must
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

    Dead host (--dead; S19, S20, S22): every server is evacuated through
    the API with bounded parallelism and verified (migration record done,
    host changed, the power state it had: from compute API 2.95 nova
    delivers evacuated servers stopped, so the ones that were running are
    started again).  The dead host's nova-compute must be reported down.
    If it is still up (or not yet reported down) this is refused: a host
    that still runs its servers would run each disk twice and corrupt it.
    Only when the host is fenced (powered off) may you pass --force-down
    together with --confirm-fenced HOST (the host name again) to force the
    service down first.

    Legacy path (--dead --via-db --target-host HOST): the guide's SQL in the
    nova cell DB (instances) and the neutron DB (ml2_port_bindings,
    ml2_port_binding_levels, for the ports of the moved servers only), then
    a hard reboot of each moved server that was running.  A dry run by
    default (prints the statements on stderr and the rows); --execute
    applies it in one transaction when both schemas are on one server,
    otherwise in two with the first undone if the second commit fails.  A
    journal of the previous values is written before the commit; --undo
    JOURNAL puts them back.  Placement allocations are not moved by SQL.

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
                 '--confirm-fenced')
        parser.add_argument(
            '--confirm-fenced', metavar='<host>',
            help='With --force-down: the host name again, to confirm it is '
                 'powered off.  Forcing down a host that still runs can '
                 'start the same disk twice and corrupt it')
        parser.add_argument(
            '--reattach-volumes', action='store_true',
            help='Once a server is up, detach and re-attach each of its '
                 'volumes at the same device and check each is in-use '
                 'again (S18).  Never on a server that is not up')
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
                 'journal (rows changed since by others make it refuse)')
        _add_db_arguments(parser, ('nova', 'neutron'))
        parser.add_argument(
            '--max-parallel', type=base.positive_int, default=4, metavar='N',
            help='Servers in flight at once (default 4)')
        parser.add_argument(
            '--timeout', type=base.positive_float, default=300.0,
            metavar='SECONDS',
            help='Per server: how long to wait for it (default 300); a '
                 'start or reboot still not back is then hard rebooted')
        parser.add_argument(
            '--retries', type=base.non_negative_int, default=1, metavar='N',
            help='Retries after a failure (default 1; for start and reboot '
                 'the retry is a hard reboot)')
        parser.add_argument(
            '--poll-interval', type=base.positive_float, default=2.0,
            metavar='SECONDS',
            help='Seconds between two looks at the host (default 2)')
        parser.add_argument(
            '--exclude', action='append', default=[], metavar='SERVER',
            help='Leave this server alone (name or ID; repeatable)')
        parser.add_argument(
            '--dry-run', action='store_true',
            help='Print the plan and change nothing (--via-db is a dry run '
                 'unless --execute)')
        base.add_api_timeout_argument(parser)
        return parser

    def run(self, parsed_args):
        _hide_db_urls(parsed_args)
        return super(RecoverAll, self).run(parsed_args)

    def _events(self):
        return base.event_printer(self.app)

    def take_action(self, parsed_args):
        from osc_nodeops.db import errors as db_errors
        from osc_nodeops.ops import recover

        events = self._events()
        try:
            if parsed_args.undo:
                return self._undo(parsed_args, events)
            if not parsed_args.host:
                raise base.UsageError(
                    'a host is required (or --undo JOURNAL)')
            opts = recover.Options(
                dead=parsed_args.dead, via_db=parsed_args.via_db,
                execute=parsed_args.execute, dry_run=parsed_args.dry_run,
                all=parsed_args.start_all, hard=parsed_args.hard,
                target_host=parsed_args.target_host,
                force_down=parsed_args.force_down,
                confirm_fenced=parsed_args.confirm_fenced,
                reattach_volumes=parsed_args.reattach_volumes,
                max_parallel=parsed_args.max_parallel,
                timeout=parsed_args.timeout, retries=parsed_args.retries,
                poll_interval=parsed_args.poll_interval,
                exclude=tuple(parsed_args.exclude))
            try:
                recover.validate(opts)
            except recover.BadInput as exc:
                raise base.UsageError(str(exc))
            if opts.via_db:
                report = self._via_db(parsed_args, opts, events)
            else:
                report = recover.recover_host(self.conn, parsed_args.host,
                                              opts, events=events)
        except (recover.BadInput, recover.Refused,
                db_errors.DBError) as exc:
            raise exceptions.CommandError(str(exc))
        return self._output(report)

    def _via_db(self, parsed_args, opts, events):
        from osc_nodeops.db import journal
        from osc_nodeops.ops import dbmove
        nova = _db_url(parsed_args, 'nova')
        neutron = _db_url(parsed_args, 'neutron')
        path = parsed_args.journal or journal.default_path(parsed_args.host)
        return dbmove.recover_via_db(self.conn, parsed_args.host, opts, nova,
                                     neutron, path, events=events)

    def _undo(self, parsed_args, events):
        from osc_nodeops.ops import dbmove
        if parsed_args.host or parsed_args.dead or parsed_args.execute:
            raise base.UsageError(
                '--undo takes only the journal and the DB options')
        nova = _db_url(parsed_args, 'nova')
        neutron = _db_url(parsed_args, 'neutron')
        return dbmove.undo(parsed_args.undo, nova, neutron, events=events)

    def _output(self, report):
        from osc_nodeops.ops import engine
        if isinstance(report, tuple):  # --undo
            return report
        if not report.ok:
            self.exit_status = base.EXIT_INCOMPLETE
        return engine.ROW_COLUMNS, [item.row() for item in report.items]


class NodeVolumes(base.NodeOpsLister):
    """List the instance/volume pairs of a compute host (runbook S17).

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

    def run(self, parsed_args):
        _hide_db_urls(parsed_args)
        return super(NodeVolumes, self).run(parsed_args)

    def take_action(self, parsed_args):
        from osc_nodeops.db import errors as db_errors
        from osc_nodeops.ops import volumes
        if parsed_args.from_db:
            from osc_nodeops.db import volumes as db_volumes
            try:
                pairs = db_volumes.list_pairs(
                    _db_url(parsed_args, 'nova'),
                    _db_url(parsed_args, 'cinder'), parsed_args.host)
            except db_errors.DBError as exc:
                raise exceptions.CommandError(str(exc))
        else:
            from osc_nodeops.ops import engine
            try:
                engine.find_compute_service(self.conn.compute,
                                            parsed_args.host)
            except LookupError as exc:
                raise exceptions.CommandError(str(exc))
            pairs = volumes.list_pairs(self.conn, parsed_args.host)
        return volumes.PAIR_COLUMNS, [volumes.pair_row(p) for p in pairs]
