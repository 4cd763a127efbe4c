"""Every option of every command is honoured or refused (issue 22).

The options come from the parsers themselves (the entry points of
setup.cfg, each command's ``get_parser``), so a new option cannot be
forgotten: the matrix fails until the option reaches the command's request
(``request(parsed_args)``, the ops request built before any cloud call) or
a base that reads it for every command (``options.BASE_DESTS``).

Then the refusals: in the modes where an option does not apply, the
command says one line and exits 2 before it touches the client manager
(here, one that fails the test when touched).
"""

import argparse
import importlib.metadata
import io

import fixtures
import testtools
from testtools import content

from osc_nodeops.v1 import base
from osc_nodeops.v1 import columns
from osc_nodeops.v1 import options


def commands():
    eps = importlib.metadata.entry_points(group='openstack.nodeops.v1')
    return sorted((ep.name.replace('_', ' '), ep.load()) for ep in eps)


class Untouchable(object):
    """A client manager that fails the test when anything asks for it."""

    def __getattr__(self, name):
        raise AssertionError('the command touched the client manager (%s) '
                             'before judging its arguments' % name)


class App(object):

    def __init__(self):
        self.client_manager = Untouchable()
        self.stdout = io.StringIO()
        self.stderr = io.StringIO()
        self.options = argparse.Namespace(debug=False)
        self.command_manager = argparse.Namespace(
            namespace='osc_nodeops.tests.no_hooks')

    def prepare_to_run_command(self, cmd):
        raise AssertionError('the command prepared to log in before '
                             'judging its arguments')


def make(cls, name):
    return cls(App(), None, cmd_name=name)


def parse(cmd, argv):
    return cmd.get_parser('openstack ' + cmd.cmd_name).parse_args(argv)


# The smallest command line of each command that builds a request.
BASE = {
    'compute node drain': ['c01'],
    'compute node undrain': ['c01'],
    'compute node show': ['c01'],
    'compute node list': [],
    'compute node maintain': ['c01', 'c02'],
    'compute node volumes': ['c01'],
    'compute node stop-service': [],
    'compute node start-service': [],
    'compute node copy-instances': ['--from', '/a', '--to', '/b'],
    'server recover-all': ['c01'],
    'instance inspect-disk': ['vm1', '--approved-by', 'me', '--reason',
                              'why'],
    'port float create': ['p1', '--network', 'n1'],
    'port float list': [],
    'port float attach': ['p1', 's1'],
    'port float detach': ['p1'],
    'port float move': ['p1', 's1'],
    'port float recover': ['10.0.0.5', '--network', 'n1'],
    'port float check': ['p1'],
}

VIA_DB = ['--dead', '--via-db', '--target-host', 'c09']

# The mode an option needs to apply (added to BASE), or a whole command
# line instead of BASE (a tuple).
NEEDS = {
    ('compute node show', '--compute-log'): ['--local'],
    ('compute node maintain', '--exec-timeout'): ['--exec', 'x'],
    ('compute node maintain', '--check-timeout'): ['--check', 'x'],
    ('compute node maintain', '--exec-env'): ['--exec', 'x'],
    ('compute node maintain', '--rerun-exec'): ['--exec', 'x'],
    ('compute node maintain', '--aggregate'): ('--availability-zone', 'z'),
    ('compute node maintain', '--availability-zone'): ('--aggregate', 'a'),
    ('server recover-all', '--target-host'): ['--dead'],
    ('server recover-all', '--force-down'): ['--dead', '--confirm-fenced',
                                             'c01'],
    ('server recover-all', '--confirm-fenced'): ['--dead'],
    ('server recover-all', '--fence-check'): ['--dead'],
    ('server recover-all', '--fence-timeout'): ['--dead', '--fence-check',
                                                'true {host}'],
    ('server recover-all', '--via-db'): ['--dead', '--target-host', 'c09'],
    ('server recover-all', '--execute'): VIA_DB,
    ('server recover-all', '--journal'): VIA_DB + ['--execute'],
    ('server recover-all', '--undo'): (),
    ('instance inspect-disk', '--nova-config'): [],
    ('instance inspect-disk', '--cleanup'): (),
}
for _schema in ('nova', 'neutron'):
    for _kind in ('db', 'conf'):
        NEEDS[('server recover-all', '--%s-%s' % (_schema, _kind))] = VIA_DB
for _schema in ('nova', 'cinder'):
    for _kind in ('db', 'conf'):
        NEEDS[('compute node volumes', '--%s-%s' % (_schema, _kind))] = [
            '--from-db']
for _opt in ('--block-migration', '--on-timeout', '--step-timeout',
             '--move-suspended', '--allow-skipped', '--max-parallel',
             '--timeout', '--retries', '--poll-interval', '--exclude',
             '--source-slots', '--dest-slots'):
    NEEDS[('compute node undrain', _opt)] = ['--migrate-back']

# Two values that must give two different requests (default: made up
# from the option's type).
VALUES = {
    '--on-timeout': ('force-complete', 'leave'),
    '--confirm-fenced': ('c01', None),
    '--fence-check': ('true {host}', 'false {host}'),
    '--fixed-ip': ('ip-address=10.0.0.5', 'ip-address=10.0.0.6'),
    '--exec-env': ('SSH_AUTH_SOCK', 'HTTP_PROXY'),
    '--rerun-exec': ('c01', 'c02'),
    '--target-host': ('c08', 'c09'),
    '--nova-db': ('mysql+pymysql://u:p@db/nova', 'mysql+pymysql://u:p@db2/n'),
    '--neutron-db': ('mysql+pymysql://u:p@db/neutron', None),
    '--cinder-db': ('mysql+pymysql://u:p@db/cinder', None),
}

# The explicit spelling of a default: the same request as without it, and
# refused with the option it excludes (argparse).
DEFAULT_SPELLINGS = {('compute node copy-instances', '--dry-run')}


def _values(action):
    option = action.option_strings[-1]
    if option in VALUES:
        one, two = VALUES[option]
        return [one], None if two is None else [two]
    if action.nargs == 0:
        return [], None  # a flag: given or not
    if action.choices:
        choices = [c for c in action.choices if c != action.default]
        return [choices[0]], [choices[1]] if len(choices) > 1 else None
    if action.nargs == 2:
        return ['a1', 'a2'], ['b1', 'b2']
    if action.type in (options.positive_int, options.non_negative_int,
                       options.tcp_port, options.partition_number):
        return ['3'], ['5']
    if action.type is options.positive_float:
        return ['7.5'], ['9.5']
    return ['/v/one'], ['/v/two']


def own_actions(cmd):
    theirs = {a.dest for a in
              super(base._NodeOpsCommand, cmd).get_parser('x')._actions}
    return [a for a in cmd.get_parser('x')._actions
            if a.option_strings and a.dest not in theirs
            and a.dest != 'help']


def _request(cmd, argv):
    return cmd.request(parse(cmd, argv))


def honoured(name, cls, action):
    """'request', 'base', 'default' or 'output'; AssertionError
    otherwise."""
    cmd = make(cls, name)
    option = action.option_strings[-1]
    if action.dest == 'long' and issubclass(cls, columns.Views):
        # Read at output time (``columns.Views``): the table shows more.
        names = ('ID', 'Project') + columns.RESULT_VIEW
        argv = BASE[name]
        assert cmd.shown_columns(parse(cmd, argv), names) != \
            cmd.shown_columns(parse(cmd, argv + [option]), names), name
        return 'output'
    if action.dest in options.BASE_DESTS:
        one, _two = _values(action)
        args = parse(cmd, BASE[name] + [option] + one)
        assert getattr(args, action.dest) is not None
        assert issubclass(cls, (options.ApiTimeout, options.EventsFile))
        return 'base'
    needs = NEEDS.get((name, option), [])
    argv = list(needs) if isinstance(needs, tuple) else BASE[name] + needs
    one, two = _values(action)
    with_one = _request(cmd, argv + [option] + one)
    if (name, option) in DEFAULT_SPELLINGS:
        assert with_one == _request(cmd, argv), (name, option)
        return 'default'
    if two is not None:
        other = _request(cmd, argv + [option] + two)
    else:
        other = _request(cmd, argv)
    assert with_one != other, '%s %s: the request does not change' % (
        name, option)
    return 'request'


def walk():
    """``(covered, failures)``: one line per option of every command."""
    covered, failures = [], []
    for name, cls in commands():
        for action in own_actions(make(cls, name)):
            option = action.option_strings[-1]
            try:
                how = honoured(name, cls, action)
            except Exception as exc:  # collect them all, then fail
                failures.append('%s %s: %s: %s' % (
                    name, option, type(exc).__name__, exc))
                continue
            covered.append('%s %s (%s)' % (name, option, how))
    return covered, failures


class TestEveryOptionIsHonoured(testtools.TestCase):

    def test_every_option_of_every_command(self):
        covered, failures = walk()
        # The coverage, for the record: stestr shows it with a failure;
        # ``python -m tests.unit.test_option_matrix`` prints it.
        self.addDetail('covered', content.text_content(
            '\n'.join(covered)))
        self.assertEqual([], failures)
        self.assertEqual(18, len({c.split(' --')[0] for c in covered}))
        self.assertGreaterEqual(len(covered), 140)

    def test_every_command_builds_its_request_without_the_cloud(self):
        for name, cls in commands():
            self.assertTrue(callable(getattr(cls, 'request', None)), name)
            _request(make(cls, name), BASE[name])


# (command, argv, what the one line says): exit 2 before any cloud call.
REFUSED = [
    ('server recover-all', ['c01', '--dead', '--hard'], '--hard'),
    ('server recover-all', ['c01', '--dead', '--via-db', '--target-host',
                            'c09', '--hard'], '--hard'),
    ('server recover-all', ['c01', '--journal', '/tmp/j'], '--journal'),
    ('server recover-all', VIA_DB[:] + ['c01', '--journal', '/tmp/j'],
     '--journal'),
    ('server recover-all', ['c01', '--nova-db', 'mysql://u:p@h/n'],
     '--nova-db'),
    ('server recover-all', ['c01', '--dead', '--neutron-db',
                            'mysql://u:p@h/n'], '--neutron-db'),
    ('server recover-all', ['c01', '--nova-conf', '/etc/n.conf'],
     '--nova-conf'),
    ('server recover-all', ['c01', '--neutron-conf', '/etc/n.conf'],
     '--neutron-conf'),
    ('server recover-all', ['c01', '--dead', '--fence-timeout', '5'],
     '--fence-timeout'),
    ('server recover-all', ['--undo', '/tmp/j', '--all'], '--all'),
    ('server recover-all', ['--undo', '/tmp/j', '--timeout', '5'],
     '--timeout'),
    ('server recover-all', ['--undo', '/tmp/j', '--reattach-volumes'],
     '--reattach-volumes'),
    ('server recover-all', ['c01', '--dead', '--target-host', 'c01'],
     '--target-host'),
    ('server recover-all', ['c01', '--dead', '--confirm-fenced', 'c02'],
     '--confirm-fenced'),
    ('server recover-all', ['c01', '--dead', '--force-down'],
     '--force-down'),
    ('server recover-all', ['c01', '--execute'], '--execute'),
    ('compute node volumes', ['c01', '--nova-db', 'mysql://u:p@h/n'],
     '--nova-db'),
    ('compute node volumes', ['c01', '--cinder-conf', '/etc/c.conf'],
     '--cinder-conf'),
    ('compute node show', ['c01', '--compute-log', '/var/log/x'],
     '--compute-log'),
    ('compute node undrain', ['c01', '--timeout', '5'], '--timeout'),
    ('compute node undrain', ['c01', '--on-timeout', 'abort'],
     '--on-timeout'),
    ('compute node undrain', ['c01', '--exclude', 'vm1'], '--exclude'),
    ('compute node drain', ['c01', 'c01'], 'named twice'),
    ('compute node drain', ['c01', '--target-host', 'c01'],
     '--target-host'),
    ('compute node drain', ['c01', '--on-timeout', 'explode'],
     'explode'),
    ('compute node drain', ['c01', '--on-timeout', 'leave',
                            '--on-timeout', 'abort'], 'leave'),
    ('compute node maintain', ['c01', 'c01'], 'named twice'),
    ('compute node maintain', ['c01', '--aggregate', 'a'], 'not both'),
    ('compute node maintain', ['c01', '--exec-timeout', '5'],
     '--exec-timeout'),
    ('compute node maintain', ['c01', '--check-timeout', '5'],
     '--check-timeout'),
    ('compute node maintain', ['c01', '--exec-env', 'FOO'], '--exec-env'),
    ('compute node maintain', ['c01', '--rerun-exec', 'c01'],
     '--rerun-exec'),
    ('compute node maintain', ['c01', '--exec', 'x', '--rerun-exec',
                               'c02'], '--rerun-exec'),
    ('instance inspect-disk', ['vm1', '--list', '/'], '--approved-by'),
    ('instance inspect-disk', ['vm1', '--list', '/', '--approved-by', 'me'],
     '--reason'),
    ('instance inspect-disk', ['vm1', '--approved-by', 'me', '--reason',
                               'why'], 'say what to do'),
    ('port float recover', ['10.0.0.300', '--network', 'n1'],
     'not an IP address'),
    ('port float create', ['p1', '--network', 'n1', '--fixed-ip',
                           'ip-address=10.0.0'], 'not an IP address'),
]

# inspect-disk --cleanup reads the journals of --state-dir (each records
# its libvirt URI and devices), writes to --audit-log and may be limited to
# one SERVER; every other option of the command is refused with it.  (A
# state dir that does not exist: were a refusal missing, the clean-up
# would find nothing to do.)
CLEANUP = ['--cleanup', '--state-dir', '/nonexistent/osc-nodeops-matrix']
CLEANUP_READS = {'--cleanup', '--state-dir', '--audit-log'}
CLEANUP_VALUES = {
    '--approved-by': ['me'], '--reason': ['why'], '--disk': ['vdb'],
    '--partition': ['2'], '--read-write': [], '--connector': ['nbd'],
    '--host': ['c01'], '--nova-conf': ['/etc/n.conf'],
    '--nova-config': ['/etc/n.conf'], '--instances-path': ['/srv/i'],
    '--libvirt-uri': ['test:///default'], '--step-timeout': ['5'],
}
for _opt, _value in sorted(CLEANUP_VALUES.items()):
    if _opt == '--nova-config':
        continue  # the hidden alias: a deprecation line, then the same
    REFUSED.append(('instance inspect-disk', CLEANUP + [_opt] + _value,
                    _opt))

# --cat, --exec and --shell write their own output (the file's bytes, the
# command's, the shell's), not rows: the output formatters' options are
# refused with them.
SESSION = ['vm1', '--approved-by', 'me', '--reason', 'why']
OWN_OUTPUT = (['--cat', '/etc/hostname'], ['--exec', 'ls'], ['--shell'])
for _mode, _opt, _says in zip(
        OWN_OUTPUT, (['-f', 'json'], ['-c', 'Name'], ['--sort-column', 'N']),
        ('--format does not go with --cat', '--column does not go with '
         '--exec', '--sort-column does not go with --shell')):
    REFUSED.append(('instance inspect-disk', SESSION + _mode + _opt, _says))


class TestRefusedBeforeTheCloud(testtools.TestCase):

    def test_each_refusal_is_one_line_exit_2_before_the_cloud(self):
        classes = dict(commands())
        failures = []
        for name, argv, says in REFUSED:
            cmd = make(classes[name], name)
            try:
                rc = cmd.run(parse(cmd, argv))
            except AssertionError as exc:
                failures.append('%s %s: %s' % (name, ' '.join(argv), exc))
                continue
            err = cmd.app.stderr.getvalue()
            if rc != 2 or len(err.splitlines()) != 1 or says not in err:
                failures.append('%s %s: exit %s, stderr %r' % (
                    name, ' '.join(argv), rc, err))
        self.assertEqual([], failures)

    def test_inspect_disk_cleanup_refuses_every_option_it_does_not_read(self):
        # From the parser, so that a new option of inspect-disk cannot be
        # silently ignored by --cleanup: each is in CLEANUP_VALUES (and so
        # in REFUSED above) or read by the clean-up; the other actions are
        # refused by argparse (one mutually exclusive group).
        classes = dict(commands())
        cmd = make(classes['instance inspect-disk'], 'instance inspect-disk')
        group = {o for g in cmd.get_parser('x')._mutually_exclusive_groups
                 for a in g._group_actions for o in a.option_strings}
        for action in own_actions(cmd):
            for option in action.option_strings:
                if option in group:
                    self.assertIn('--cleanup', group)
                    continue
                self.assertTrue(option in CLEANUP_READS or
                                option in CLEANUP_VALUES, option)
        # And the clean-up's own: a request without a refusal.
        args = parse(cmd, CLEANUP + ['--audit-log', '/tmp/a', 'vm1'])
        self.assertEqual('cleanup', cmd.request(args).action)

    def test_inspect_disk_own_output_refuses_every_formatter_option(self):
        # From cliff's parser, so that a formatter option cliff adds
        # later is refused too.
        from cliff import lister
        classes = dict(commands())
        name = 'instance inspect-disk'
        cliffs = [a for a in lister.Lister.get_parser(
            make(classes[name], name), 'x')._actions
            if a.option_strings and a.dest != 'help']
        self.assertGreaterEqual(len(cliffs), 9)
        for action in cliffs:
            option = action.option_strings[-1]
            if action.nargs == 0:
                value = []
            elif action.choices:
                value = [[c for c in action.choices
                          if c != action.default][0]]
            else:
                value = ['3']
            for mode in OWN_OUTPUT:
                cmd = make(classes[name], name)
                rc = cmd.run(parse(cmd, SESSION + mode + [option] + value))
                err = cmd.app.stderr.getvalue()
                self.assertEqual(2, rc, (option, mode, err))
                self.assertIn('%s does not go with %s' % (option, mode[0]),
                              err)
                self.assertEqual(1, len(err.splitlines()), err)
            # --list and --copy-out print rows: formatted as asked.
            cmd = make(classes[name], name)
            cmd.request(parse(cmd, SESSION + ['--list', '/', option] +
                              value))


class TestOneVocabulary(testtools.TestCase):

    def test_nova_conf_everywhere_nova_config_a_hidden_alias(self):
        for name, cls in commands():
            cmd = make(cls, name)
            spelled = [o for a in own_actions(cmd) for o in a.option_strings]
            self.assertNotIn('--nova-config', cmd.get_parser(
                'x').format_help(), name)
            if '--nova-config' in spelled:
                self.assertIn('--nova-conf', spelled, name)

    def test_nova_config_still_works_with_a_warning(self):
        classes = dict(commands())
        cmd = make(classes['instance inspect-disk'], 'instance inspect-disk')
        args = parse(cmd, ['vm1', '--list', '/', '--nova-config',
                           '/etc/n.conf'])
        self.assertEqual('/etc/n.conf', args.nova_conf)
        self.assertEqual(['--nova-config is deprecated and goes in a later '
                          'release: use --nova-conf'],
                         options.deprecations(args))
        self.assertEqual('/etc/n.conf', cmd.request(args).nova_config)

    def test_on_timeout_repeatable_and_the_comma_form_deprecated(self):
        classes = dict(commands())
        cmd = make(classes['compute node drain'], 'compute node drain')
        repeated = parse(cmd, ['c01', '--on-timeout', 'force-complete',
                               '--on-timeout', 'abort'])
        comma = parse(cmd, ['c01', '--on-timeout', 'force-complete,abort'])
        self.assertEqual(cmd.request(repeated), cmd.request(comma))
        self.assertEqual('force-complete,abort',
                         cmd.request(repeated).on_timeout)
        self.assertEqual([], options.deprecations(repeated))
        [note] = options.deprecations(comma)
        self.assertIn('comma form is deprecated', note)
        self.assertIn('--on-timeout force-complete --on-timeout abort', note)
        self.assertEqual('abort', cmd.request(parse(cmd, ['c01'])).on_timeout)

    def test_a_deprecation_is_said_on_stderr_once(self):
        classes = dict(commands())
        cmd = make(classes['compute node drain'], 'compute node drain')
        rc = cmd.run(parse(cmd, ['c01', 'c01', '--on-timeout',
                                 'force-complete,abort']))
        self.assertEqual(2, rc)
        lines = cmd.app.stderr.getvalue().splitlines()
        self.assertEqual(2, len(lines), lines)
        self.assertIn('warning: --on-timeout force-complete,abort: the '
                      'comma form is deprecated', lines[0])

    def test_one_meaning_per_option_name(self):
        # The same spelling has the same type (and so the same kind of
        # value) in every command that takes it.  A repeatable option
        # (append) takes the same value each time as a single one (store):
        # ``compute node list --host`` and ``inspect-disk --host``.
        seen, clashes = {}, []
        for name, cls in commands():
            for action in own_actions(make(cls, name)):
                for option in action.option_strings:
                    kind = (action.type, action.nargs, {
                        '_AppendAction': '_StoreAction'}.get(
                            type(action).__name__, type(action).__name__))
                    if seen.setdefault(option, (kind, name))[0] != kind:
                        clashes.append('%s: %s in %s, %s in %s' % (
                            option, seen[option][0], seen[option][1], kind,
                            name))
        self.assertEqual([], clashes)


class TestLocalCommandsRunTheirRequest(testtools.TestCase):
    """The request reaches the ops call: the local commands need no
    cloud, so they run whole here."""

    def test_copy_instances_dry_run(self):
        src = self.useFixture(fixtures.TempDir()).path
        dst = self.useFixture(fixtures.TempDir()).path
        classes = dict(commands())
        name = 'compute node copy-instances'
        cmd = make(classes[name], name)
        rc = cmd.run(parse(cmd, ['--from', src, '--to', dst, '-f',
                                 'json']))
        self.assertEqual(0, rc, cmd.app.stderr.getvalue())
        self.assertIn('dry run: nothing was written',
                      cmd.app.stderr.getvalue())
        self.assertEqual('[]', cmd.app.stdout.getvalue().strip())


class TestMaintainPollInterval(testtools.TestCase):

    def test_the_wait_step_polls_at_poll_interval(self):
        classes = dict(commands())
        cmd = make(classes['compute node maintain'], 'compute node maintain')
        req = cmd.request(parse(cmd, ['c01', '--poll-interval', '0.5']))
        self.assertEqual(0.5, req.poll_interval)
        self.assertEqual(0.5, req.drain_options.poll_interval)


if __name__ == '__main__':
    _covered, _failures = walk()
    print('\n'.join(_covered + ['FAILED: ' + f for f in _failures]))
    print('%d options of %d commands covered, %d failed' % (
        len(_covered), len({c.split(' --')[0] for c in _covered}),
        len(_failures)))
