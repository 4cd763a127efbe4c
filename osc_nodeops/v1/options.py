"""The option families of the osc-nodeops commands, each written once, and
the argparse types they share.

A leaf command inherits the families it takes, the way ironicclient's
``ProvisionStateWithWait`` adds ``--wait`` to every provision-state
command: ``class DrainNode(options.Moves, options.Executor, ...,
base.NodeOpsLister)``.  Each family is an osc-lib ``Command`` (so that the
type checker knows its ``super()`` calls); its ``get_parser`` calls its
base's and adds its options.  A command words an option's help for itself
through the family's class attributes (``timeout_help``, ...), never by
adding the option a second time.  A family of several options keeps them in
one table (``Executor.executor_table``, ``Moves.move_table``); a command
takes the ones its ``executor_options`` or ``move_options`` names.

Only cheap imports here (``openstack`` imports every plugin's commands).
"""

import argparse
import math
import os
from typing import Any

from osc_lib.command import command

# ------------------------------------------------------------ argparse types


def _number(text, kind, name):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError('%r is not %s' % (text, name))


def positive_int(text):
    """argparse type: an integer of at least 1."""
    value = _number(text, int, 'an integer')
    if value < 1:
        raise argparse.ArgumentTypeError('must be at least 1, got %d' % value)
    return value


def non_negative_int(text):
    """argparse type: an integer of at least 0."""
    value = _number(text, int, 'an integer')
    if value < 0:
        raise argparse.ArgumentTypeError('must be 0 or more, got %d' % value)
    return value


def positive_float(text):
    """argparse type: a finite number above 0 (not NaN, not infinity: a
    wait must end)."""
    value = _number(text, float, 'a number')
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError('must be a positive finite number, '
                                         'got %s' % text)
    return value


def tcp_port(text):
    """argparse type: a TCP port, 1-65535."""
    value = positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError('must be at most 65535, got %d'
                                         % value)
    return value


def partition_number(text):
    """argparse type: a partition number, 0 meaning the whole disk."""
    value = _number(text, int, 'a number')
    if value < 0:
        raise argparse.ArgumentTypeError('must be 0 (whole disk) or more')
    return value


# ------------------------------------------------------ deprecated spellings

#: Where an action records a deprecated spelling it accepted; the command
#: says each as one line on stderr before it starts (``v1/base.py``).
DEPRECATED = '_nodeops_deprecated'


def deprecations(parsed_args):
    """The deprecation notes of a parsed command line, in order."""
    return list(getattr(parsed_args, DEPRECATED, None) or ())


def _deprecated(namespace, note):
    notes = list(getattr(namespace, DEPRECATED, None) or ())
    if note not in notes:
        notes.append(note)
    setattr(namespace, DEPRECATED, notes)


class ListOption(argparse.Action):
    """A list option given once per value (``--on-timeout force-complete
    --on-timeout abort``), as OSC's guide asks.  The comma form
    (``force-complete,abort``) still works for one release, with a
    deprecation note.  The value is a list, None when not given."""

    def __init__(self, option_strings, dest, **kwargs):
        kwargs.setdefault('default', None)
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        items = list(getattr(namespace, self.dest, None) or ())
        if ',' in values:
            parts = [p.strip() for p in values.split(',')]
            _deprecated(namespace, '%s %s: the comma form is deprecated and '
                        'goes in a later release; repeat the option: %s' % (
                            option_string, values, ' '.join(
                                '%s %s' % (option_string, p)
                                for p in parts)))
            items.extend(parts)
        else:
            items.append(values)
        setattr(namespace, self.dest, items)


class DeprecatedAlias(argparse.Action):
    """A hidden old spelling of an option, kept for one release: stores
    into the new option's dest and leaves a deprecation note."""

    def __init__(self, option_strings, dest, new=None, **kwargs):
        self.new = new
        kwargs['default'] = argparse.SUPPRESS
        kwargs['help'] = argparse.SUPPRESS
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        _deprecated(namespace, '%s is deprecated and goes in a later '
                    'release: use %s' % (option_string, self.new))
        setattr(namespace, self.dest, values)


def add_deprecated_alias(parser, old, new, dest, metavar=None):
    """``old`` as a hidden, deprecated spelling of ``new``."""
    parser.add_argument(old, dest=dest, action=DeprecatedAlias, new=new,
                        metavar=metavar)


def given(parsed_args, dest):
    """Whether the operator gave the option of ``dest`` (its value is not
    None: a family whose option must be refused in some modes leaves its
    default to the request)."""
    return getattr(parsed_args, dest, None) is not None


# ------------------------------------------------------------------ families
#
# Options a base reads for every command that has them (``v1/base.py``):
# the matrix test (tests/unit/test_option_matrix.py) counts them as used.
BASE_DESTS = ('api_timeout', 'events_file')


#: An option family's table: one ``(dest, help attribute, argparse
#: keywords)`` per option, spelled ``--dest-with-dashes``.
OptionTable = tuple[tuple[str, str, dict[str, Any]], ...]


def add_options(parser, command, table, wanted):
    """Add the options of ``table`` that ``wanted`` names, in the table's
    order, each with the help the command words (its help attribute)."""
    for dest, help_attr, kwargs in table:
        if dest in wanted:
            parser.add_argument('--' + dest.replace('_', '-'),
                                help=getattr(command, help_attr), **kwargs)


class ApiTimeout(command.Command):
    """``--api-timeout``: a bound on every API request (read by the base's
    ``conn``)."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument(
            '--api-timeout', type=positive_float, default=None,
            metavar='SECONDS',
            help='Give up on an API request that has not answered within '
                 'SECONDS (connect, and each read; default 60).  A request '
                 'that timed out counts as a transient fault: it is '
                 'checked, then retried')
        return parser


class EventsFile(command.Command):
    """``--events FILE``: every event as one JSON line (read by the base's
    ``run``)."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument(
            '--events', metavar='<file>', dest='events_file',
            help='Also append every event to FILE as one JSON object per '
                 'line (time, host, server, step, state, message), flushed '
                 'as it happens')
        return parser


class DryRun(command.Command):
    """``--dry-run``: say what would be done, change nothing."""

    dry_run_help = 'Show what would be done; change nothing'

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('--dry-run', action='store_true',
                            help=self.dry_run_help)
        return parser


class BreakLease(command.Command):
    """``--break-lease``: take a host another live run holds."""

    break_lease_help = (
        'Take the host from another osc-nodeops run whose lease is still '
        'live (compute node list shows it): only when that run is gone.  '
        'An expired lease (not renewed for 120 s) is taken without it')

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('--break-lease', action='store_true',
                            help=self.break_lease_help)
        return parser


class Scope(command.Command):
    """``--aggregate`` and ``--availability-zone``: the hosts of one."""

    aggregate_help = 'Only the hosts of this host aggregate (name or ID)'
    zone_help = 'Only the hosts of this availability zone'

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('--aggregate', metavar='<aggregate>',
                            help=self.aggregate_help)
        parser.add_argument('--availability-zone', metavar='<zone>',
                            help=self.zone_help)
        return parser


class Executor(command.Command):
    """The engine's options: how many servers at once, how long each may
    take, retries, how often the host is looked at, servers left alone.

    ``executor_options`` names the ones a command takes (maintain takes no
    --retries or --exclude); ``executor_request`` gives them to an ops
    request."""

    executor_options: tuple[str, ...] = ('max_parallel', 'timeout',
                                         'retries', 'poll_interval',
                                         'exclude')
    timeout_default = 600.0
    parallel_help = 'Servers in flight at once (default 4)'
    timeout_help = ('Per server: how long nova may work on a move '
                    '(default 600); a live migration\'s wait in nova\'s '
                    'queue behind others from the host is not counted')
    retries_help = 'Retries after a failure (default 1)'
    poll_help = 'Seconds between two looks at the host (default 2)'
    exclude_help = 'Leave this server alone (name or ID; repeatable)'

    # (dest, the attribute that words its help, argparse keywords), in the
    # order of the help.  Defaults stay None here (given() tells what the
    # operator said); executor_request puts them in.
    executor_table: OptionTable = (
        ('max_parallel', 'parallel_help', dict(type=positive_int,
                                               metavar='N')),
        ('timeout', 'timeout_help', dict(type=positive_float,
                                         metavar='SECONDS')),
        ('retries', 'retries_help', dict(type=non_negative_int,
                                         metavar='N')),
        ('poll_interval', 'poll_help', dict(type=positive_float,
                                            metavar='SECONDS')),
        ('exclude', 'exclude_help', dict(action='append',
                                         metavar='SERVER')),
    )

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        add_options(parser, self, self.executor_table,
                    self.executor_options)
        return parser

    def executor_defaults(self):
        return {'max_parallel': 4, 'timeout': self.timeout_default,
                'retries': 1, 'poll_interval': 2.0, 'exclude': ()}

    def executor_request(self, parsed_args):
        """The executor's options as keyword arguments of an ops request."""
        defaults = self.executor_defaults()
        out = {}
        for name in self.executor_options:
            value = getattr(parsed_args, name)
            if value is None:
                value = defaults[name]
            out[name] = tuple(value) if name == 'exclude' else value
        return out


ON_TIMEOUT_DEFAULT = 'abort'


class Moves(command.Command):
    """How servers are moved off a host (drain, undrain, maintain):
    --block-migration, --on-timeout (repeatable), --step-timeout,
    --move-suspended, --allow-skipped; and (drain, maintain)
    --allow-partial, --fallback, --honour-skip.  ``move_options`` names the
    ones a command takes."""

    drain_options: tuple[str, ...] = ('block_migration', 'on_timeout',
                                      'step_timeout', 'timeout_per_gib',
                                      'stall_timeout', 'source_slots',
                                      'dest_slots', 'move_suspended',
                                      'allow_skipped', 'allow_partial',
                                      'fallback', 'honour_skip')

    move_options: tuple[str, ...] = ('block_migration', 'on_timeout',
                                     'step_timeout', 'source_slots',
                                     'dest_slots', 'move_suspended',
                                     'allow_skipped')
    move_suspended_help = ('Move SUSPENDED servers: resume, live-migrate, '
                           'suspend again (default: skip them)')
    allow_skipped_help = ('Exit 0 even if servers were skipped (they are '
                          'still listed)')

    block_migration_help = (
        'Live migrations: copy local disks (yes), rely on shared storage '
        '(no), or let nova decide per server (auto, the default; needs '
        'compute API 2.25, else decided from the server: volume-backed '
        'means no)')
    on_timeout_help = (
        'What to do with a live migration still running after --timeout: '
        'abort it (the server stays where it was), force-complete it (pause '
        'and finish), or leave it running (a rerun picks it up).  Repeat it '
        'for a sequence, e.g. --on-timeout force-complete --on-timeout '
        'abort: the first step after --timeout, each next one '
        '--step-timeout after the one before (a step nova refuses or that '
        'cannot apply goes on to the next at once); leave only last.  The '
        'comma form (force-complete,abort) is deprecated.  An aborted or '
        'failed live migration is then retried (--retries).  Default: '
        'abort')
    step_timeout_help = (
        'Seconds each --on-timeout step gets before the next one (and the '
        'last before the migration is left running).  Default: half of '
        '--timeout, at least 60')
    allow_partial_help = (
        'When the pre-flight finds servers the rest of the cloud cannot '
        'hold (placement inventories and usages of the candidate hosts), '
        'move what fits and leave the rest (default: refuse to start, '
        'nothing changed)')
    fallback_help = (
        'After the last live attempt of an ACTIVE server failed (ladder '
        'and retries): cold-migrate it (it is powered off for the move, '
        'then ACTIVE again on the new host), or leave it (none, the '
        'default; an owner\'s nodeops:maintenance=cold allows it for that '
        'server)')
    honour_skip_help = (
        'Obey servers whose owner set nodeops:maintenance=skip (metadata '
        'or tag): leave them on the host.  Without it, they are moved like '
        'the others and the row says the owner asked to skip')
    timeout_per_gib_help = (
        'Per live migration: SECONDS per GiB it copies (the flavor\'s '
        'memory, and its local disks unless --block-migration no or the '
        'root is a volume), when that is more than --timeout, as nova\'s '
        'live_migration_completion_timeout counts (800 there).  The plan\'s '
        'Ladder shows each server\'s.  Needs compute API 2.47 (flavor '
        'sizes in the server listing); before it, --timeout')
    stall_timeout_help = (
        'A running live migration whose bytes still to copy (memory and '
        'disk) have not reached a new low for SECONDS is stalled: the first '
        '--on-timeout step runs at once, before --timeout.  One more API '
        'call per running migration per poll.  Needs compute API 2.23.  '
        'Default: off')
    source_slots_help = (
        'Moves at once out of one host (default 1, nova\'s default '
        'max_concurrent_live_migrations): a move starts only when fewer '
        'unfinished migrations leave its host, counting every one nova '
        'lists (another tool\'s too), so none waits queued in nova')
    dest_slots_help = (
        'Moves at once into one host (default 1): each move names its '
        'destination (the pre-flight\'s landing, else another candidate '
        'with a free slot; compute API 2.30 live, 2.56 cold, else the '
        'scheduler chooses and only --source-slots applies) and starts '
        'only when fewer unfinished migrations, anyone\'s, go there')
    move_table: OptionTable = (
        ('block_migration', 'block_migration_help',
         dict(choices=('auto', 'yes', 'no'))),
        ('on_timeout', 'on_timeout_help', dict(metavar='<step>',
                                               action=ListOption)),
        ('step_timeout', 'step_timeout_help', dict(type=positive_float,
                                                   metavar='SECONDS')),
        ('timeout_per_gib', 'timeout_per_gib_help', dict(
            type=positive_float, metavar='SECONDS')),
        ('stall_timeout', 'stall_timeout_help', dict(
            type=positive_float, metavar='SECONDS')),
        ('source_slots', 'source_slots_help', dict(type=positive_int,
                                                   metavar='N')),
        ('dest_slots', 'dest_slots_help', dict(type=positive_int,
                                               metavar='N')),
        ('move_suspended', 'move_suspended_help', dict(action='store_true')),
        ('allow_skipped', 'allow_skipped_help', dict(action='store_true')),
        ('allow_partial', 'allow_partial_help', dict(action='store_true')),
        ('fallback', 'fallback_help', dict(choices=('none', 'cold'))),
        ('honour_skip', 'honour_skip_help', dict(action='store_true')),
    )

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        add_options(parser, self, self.move_table, self.move_options)
        return parser

    def moves_request(self, parsed_args):
        """The move options as keyword arguments of ``drain.Options``."""
        out = {name: getattr(parsed_args, name)
               for name in self.move_options}
        if 'block_migration' in out:
            out['block_migration'] = out['block_migration'] or 'auto'
        if 'on_timeout' in out:
            out['on_timeout'] = ','.join(out['on_timeout'] or
                                         [ON_TIMEOUT_DEFAULT])
        if 'fallback' in out and out['fallback'] == 'none':
            out['fallback'] = None
        for name in ('source_slots', 'dest_slots'):
            if name in out and out[name] is None:
                out[name] = 1
        return out

    def given_moves(self, parsed_args):
        """The move and executor options the operator gave, spelled as on
        the command line (undrain refuses them without --migrate-back)."""
        names = tuple(self.move_options) + tuple(
            getattr(self, 'executor_options', ()))
        return ['--' + name.replace('_', '-') for name in names
                if getattr(parsed_args, name, None) not in (None, False)]


# ------------------------------------------------------------- DB sources

DEFAULT_CONF = {'nova': '/etc/nova/nova.conf',
                'neutron': '/etc/neutron/neutron.conf',
                'cinder': '/etc/cinder/cinder.conf'}
DB_SCHEMAS = ('nova', 'neutron', 'cinder')


def db_env_var(name):
    """Where a DB URL may come from instead of the command line."""
    return 'NODEOPS_%s_DB' % name.upper()


def db_dests(schemas):
    """The argparse dests of the DB source options of ``schemas``."""
    return tuple('%s_%s' % (name, kind) for name in schemas
                 for kind in ('db', 'conf'))


class DBSources(command.Command):
    """``--<name>-db URL`` and ``--<name>-conf PATH`` for each schema of
    ``db_schemas``; ``db_source`` resolves them (the URL, else
    ``$NODEOPS_<NAME>_DB``, else the config file).  A URL's repr() hides
    its password before osc-lib logs the parsed arguments.

    The -conf options default to None so that a command can refuse them
    where no database is read; ``db_source`` puts in the default path."""

    db_schemas: tuple[str, ...] = ('nova',)

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        for name in self.db_schemas:
            what = 'nova cell' if name == 'nova' else name
            parser.add_argument(
                '--%s-db' % name, metavar='<url>',
                help='The %s database URL (mysql+pymysql://USER:PASSWORD@'
                     'HOST/DB[?ssl_ca=...]).  Default: the environment '
                     'variable %s, else [database] connection of --%s-conf.'
                     '  Prefer the config file or the variable: a URL on '
                     'the command line is visible to other local users (ps) '
                     'and stays in shell history.  The password is never '
                     'printed, logged or put in an error message' % (
                         what, db_env_var(name), name))
            parser.add_argument(
                '--%s-conf' % name, metavar='<path>', default=None,
                help='Where to read the %s database URL from when --%s-db '
                     'is not given (default %s)' % (what, name,
                                                     DEFAULT_CONF[name]))
        return parser

    def run(self, parsed_args):
        from osc_nodeops.ops import recover
        for name in self.db_schemas:
            value = getattr(parsed_args, '%s_db' % name, None)
            if value:
                setattr(parsed_args, '%s_db' % name, recover.SecretURL(value))
        return super().run(parsed_args)

    @staticmethod
    def db_source(parsed_args, name):
        """--<name>-db, else $NODEOPS_<NAME>_DB, else --<name>-conf (or its
        default path)."""
        from osc_nodeops.ops import recover
        url = getattr(parsed_args, '%s_db' % name) or os.environ.get(
            db_env_var(name))
        conf = getattr(parsed_args, '%s_conf' % name) or DEFAULT_CONF[name]
        return recover.DBSource(url, conf, what=name)

    def refuse_db_options(self, parsed_args, where):
        """A usage error when a DB source option was given to a mode that
        reads no database (``where`` says which modes do)."""
        from osc_nodeops import errors
        for dest in db_dests(self.db_schemas):
            if given(parsed_args, dest):
                raise errors.UsageError('--%s only goes with %s' % (
                    dest.replace('_', '-'), where))
