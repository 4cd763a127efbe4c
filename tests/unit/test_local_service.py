import datetime
import os
import subprocess
from unittest import mock

import fixtures
import testtools

from osc_nodeops.ops import local_service as ops
from osc_nodeops.privileged import proc


def _res(stdout):
    return subprocess.CompletedProcess([], 0, stdout, '')


class SystemctlFake(object):
    """Answers is-active / is-enabled; records everything else."""

    def __init__(self, active='active', enabled='enabled'):
        self.active = active
        self.enabled = enabled
        self.calls = []

    def __call__(self, *args, check=True, timeout=120):
        if args[0] == 'is-active':
            return _res(self.active + '\n')
        if args[0] == 'is-enabled':
            return _res(self.enabled + '\n')
        self.calls.append(args)
        return _res('')


class TestSystemd(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.root = self.useFixture(fixtures.TempDir()).path
        os.makedirs(os.path.join(self.root, 'run', 'systemd', 'system'))
        self.layout = ops.Layout(root=self.root)
        self.useFixture(fixtures.MockPatchObject(
            proc, 'which', return_value='/bin/systemctl'))

    def test_stop_then_mask(self):
        fake = SystemctlFake()
        kind, rows = ops.plan('stop', layout=self.layout, systemctl=fake)
        self.assertEqual('systemd', kind)
        self.assertEqual([('stop', 'systemctl stop nova-compute', 'planned'),
                          ('mask', 'systemctl mask nova-compute',
                           'planned')],
                         [r.row()[:3] for r in rows])
        self.assertEqual([], fake.calls)  # planning changes nothing
        ops.execute(rows, layout=self.layout, systemctl=fake)
        self.assertEqual([('stop', 'nova-compute'), ('mask', 'nova-compute')],
                         fake.calls)
        self.assertEqual(['done', 'done'], [r.result for r in rows])

    def test_start_unmasks_first(self):
        fake = SystemctlFake(active='inactive', enabled='masked')
        _, rows = ops.plan('start', layout=self.layout, systemctl=fake)
        ops.execute(rows, layout=self.layout, systemctl=fake)
        self.assertEqual([('unmask', 'nova-compute'),
                          ('start', 'nova-compute')], fake.calls)

    def test_already_stopped_and_masked(self):
        fake = SystemctlFake(active='inactive', enabled='masked-runtime')
        _, rows = ops.plan('stop', layout=self.layout, systemctl=fake)
        self.assertEqual(['not needed', 'not needed'],
                         [r.result for r in rows])
        ops.execute(rows, layout=self.layout, systemctl=fake)
        self.assertEqual([], fake.calls)

    def test_failure_stops_the_run(self):
        fake = mock.Mock(side_effect=[
            _res('active'), _res('enabled'),
            proc.PrivilegedError('systemctl stop nova-compute failed')])
        _, rows = ops.plan('stop', layout=self.layout, systemctl=fake)
        ops.execute(rows, layout=self.layout, systemctl=fake)
        self.assertEqual(['failed', 'planned'], [r.result for r in rows])
        self.assertIn('failed', rows[0].detail)

    def test_bad_service_name(self):
        self.assertRaises(ops.ServiceError, ops.plan, 'stop', 'x; rm -rf /',
                          layout=self.layout, systemctl=SystemctlFake())

    def test_service_name_is_no_path_and_no_option(self):
        # '..' climbs out of /etc/init.d (and the hold directory); '-h'
        # and '--now' would reach systemctl as options.
        for name in ('..', '../../tmp/x', 'a..b', '-h', '--now', '.hidden',
                     ''):
            err = self.assertRaises(ops.ServiceError, ops.plan, 'stop', name,
                                    layout=self.layout,
                                    systemctl=SystemctlFake())
            self.assertIn('not a service name', str(err))
        kind, _ = ops.plan('stop', 'nova-compute@2.service',
                           layout=self.layout, systemctl=SystemctlFake())
        self.assertEqual('systemd', kind)


class TestInitFiles(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.root = self.useFixture(fixtures.TempDir()).path
        self.layout = ops.Layout(root=self.root)
        for d in ('etc/init', 'etc/init.d'):
            os.makedirs(os.path.join(self.root, d))
        self.sysv = os.path.join(self.root, 'etc/init.d/nova-compute')
        self.upstart = os.path.join(self.root, 'etc/init/nova-compute.conf')
        for p in (self.sysv, self.upstart):
            with open(p, 'w') as f:
                f.write('#!/bin/sh\n')
        self.script = mock.Mock()

    def run_ops(self, direction):
        _, rows = ops.plan(direction, layout=self.layout)
        return ops.execute(rows, layout=self.layout,
                           init_script=self.script, initctl=mock.Mock())

    def test_refuses_when_it_cannot_tell(self):
        root = self.useFixture(fixtures.TempDir()).path
        err = self.assertRaises(ops.ServiceError, ops.plan, 'stop',
                                layout=ops.Layout(root=root))
        self.assertIn('cannot tell how nova-compute is managed', str(err))

    def test_stop_moves_init_files_away_and_start_brings_them_back(self):
        rows = self.run_ops('stop')
        self.assertEqual(['stop', 'hold', 'hold'], [r.step for r in rows])
        self.assertEqual(['done'] * 3, [r.result for r in rows])
        self.script.assert_called_once_with(self.sysv, 'stop')
        self.assertFalse(os.path.exists(self.sysv))
        self.assertFalse(os.path.exists(self.upstart))
        self.assertTrue(os.path.exists(self.layout.held(self.sysv)))
        # Again: nothing to do.
        rows = self.run_ops('stop')
        self.assertEqual(['not needed'] * 3, [r.result for r in rows])
        rows = self.run_ops('start')
        self.assertEqual(['restore', 'restore', 'start'],
                         [r.step for r in rows])
        self.assertTrue(os.path.exists(self.sysv))
        self.assertTrue(os.path.exists(self.upstart))
        self.script.assert_called_with(self.sysv, 'start')

    def test_never_replaces_a_held_file(self):
        self.run_ops('stop')
        with open(self.sysv, 'w') as f:
            f.write('reinstalled by the package manager\n')
        err = self.assertRaises(ops.ServiceError, ops.plan, 'start',
                                layout=self.layout)
        self.assertIn('not replacing it', str(err))


class TestLocalReport(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.proc = self.useFixture(fixtures.TempDir()).path
        self.btime = 1_700_000_000
        with open(os.path.join(self.proc, 'stat'), 'w') as f:
            f.write('cpu 1 2 3\nbtime %d\n' % self.btime)
        self.hz = os.sysconf('SC_CLK_TCK')
        self.log = os.path.join(self.proc, 'nova-compute.log')

    def add_proc(self, pid, argv, start_s, state='S'):
        d = os.path.join(self.proc, str(pid))
        os.makedirs(d)
        with open(os.path.join(d, 'cmdline'), 'wb') as f:
            f.write(b'\0'.join(a.encode() for a in argv) + b'\0')
        fields = [state] + ['0'] * 18 + [str(int(start_s * self.hz))]
        with open(os.path.join(d, 'stat'), 'w') as f:
            f.write('%d (x y) %s\n' % (pid, ' '.join(fields)))

    def started(self, start_s):
        return datetime.datetime.fromtimestamp(self.btime + start_s,
                                               datetime.timezone.utc)

    def log_line(self, when, text):
        with open(self.log, 'a') as f:
            f.write('%s 42 INFO oslo.messaging._drivers.impl_rabbit [-] %s\n'
                    % (when.astimezone().strftime('%Y-%m-%d %H:%M:%S.%f')
                       [:-3], text))

    def test_running_and_connected_after_start(self):
        self.add_proc(100, ['/usr/bin/python3', '/usr/bin/nova-compute',
                            '--config-file', '/etc/nova/nova.conf'], 50)
        self.add_proc(101, ['/usr/bin/nova-api'], 10)
        self.add_proc(102, ['/usr/bin/nova-compute'], 60, state='Z')
        self.log_line(self.started(40), 'Connected to AMQP server on a:5672')
        self.log_line(self.started(55), '[x] Reconnected to AMQP server on '
                      'a:5672 via [amqp] client with port 1.')
        fields, ok = ops.local_report(log_file=self.log,
                                      proc_root=self.proc)
        fields = dict(fields)
        self.assertTrue(ok)
        self.assertEqual('nova-compute running (pid 100)',
                         fields['Local Process'])
        self.assertEqual(self.started(50).isoformat(timespec='seconds'),
                         fields['Local Process Since'])
        self.assertIn('after the process started', fields['Local AMQP'])

    def test_connection_older_than_process(self):
        self.add_proc(100, ['/usr/bin/nova-compute'], 50)
        self.log_line(self.started(40), 'Connected to AMQP server on a:5672')
        fields, ok = ops.local_report(log_file=self.log,
                                      proc_root=self.proc)
        self.assertFalse(ok)
        self.assertIn('BEFORE the process started', dict(fields)['Local AMQP'])

    def test_not_running_no_line_no_log(self):
        open(self.log, 'w').close()
        fields, ok = ops.local_report(log_file=self.log,
                                      proc_root=self.proc)
        fields = dict(fields)
        self.assertFalse(ok)
        self.assertEqual('nova-compute not running', fields['Local Process'])
        self.assertIn('no "Connected to AMQP server" line',
                      fields['Local AMQP'])
        fields, ok = ops.local_report(log_file=self.log + '.missing',
                                      proc_root=self.proc)
        self.assertIn('cannot read', dict(fields)['Local AMQP'])

    def test_match_picks_one_of_several(self):
        self.add_proc(100, ['/v/nova-compute', '--config-file', 'c01.conf'],
                      50)
        self.add_proc(101, ['/v/nova-compute', '--config-file', 'c02.conf'],
                      51)
        procs = ops.find_processes(proc_root=self.proc, match='c02.conf')
        self.assertEqual([101], [p[0] for p in procs])

    def test_prefer_host_among_several(self):
        self.add_proc(100, ['/v/nova-compute', '--config-file', 'c01.conf'],
                      50)
        self.add_proc(101, ['/v/nova-compute', '--config-file', 'c02.conf'],
                      51)
        open(self.log, 'w').close()
        fields, _ = ops.local_report(log_file=self.log, proc_root=self.proc,
                                     prefer='c01')
        self.assertEqual('nova-compute running (pid 100)',
                         dict(fields)['Local Process'])
        fields, _ = ops.local_report(log_file=self.log, proc_root=self.proc,
                                     prefer='c09')
        self.assertEqual('nova-compute running (pid 100, 101)',
                         dict(fields)['Local Process'])

    def test_amqp_connections_from_proc(self):
        self.add_proc(100, ['/usr/bin/nova-compute'], 50)
        base = os.path.join(self.proc, '100')
        os.makedirs(os.path.join(base, 'fd'))
        os.makedirs(os.path.join(base, 'net'))
        os.symlink('socket:[777]', os.path.join(base, 'fd', '5'))
        os.symlink('/dev/null', os.path.join(base, 'fd', '0'))
        head = ('  sl  local_address rem_address   st tx_queue rx_queue tr '
                'tm->when retrnsmt   uid  timeout inode\n')
        with open(os.path.join(base, 'net', 'tcp'), 'w') as f:
            f.write(head)
            # 127.0.0.1:40000 -> 127.0.0.1:5672 ESTABLISHED, inode 777
            f.write('   0: 0100007F:9C40 0100007F:1628 01 00000000:00000000 '
                    '00:00000000 00000000     0        0 777 1 0 20 4 30 10 '
                    '-1\n')
            # same, other inode (another process)
            f.write('   1: 0100007F:9C41 0100007F:1628 01 00000000:00000000 '
                    '00:00000000 00000000     0        0 778 1 0 20 4 30 10 '
                    '-1\n')
        self.assertEqual(['127.0.0.1:5672'],
                         ops.amqp_connections(100, proc_root=self.proc))
        open(self.log, 'w').close()
        fields, ok = ops.local_report(log_file=self.log, proc_root=self.proc)
        self.assertTrue(ok)
        self.assertEqual('1 established (127.0.0.1:5672)',
                         dict(fields)['Local AMQP Connections'])


class TestShowNodeLocal(testtools.TestCase):

    def test_local_fields_added(self):
        import collections
        from osc_nodeops.ops import node_show
        from osc_nodeops.v1 import node
        cmd = node.ShowNode(mock.Mock(), mock.Mock())
        parser = cmd.get_parser('show')
        args = parser.parse_args(['c01', '--local', '--compute-log', '/l'])
        self.useFixture(fixtures.MockPatchObject(
            node_show, 'gather', side_effect=lambda compute, host:
            collections.OrderedDict([('Host', host)])))
        report = self.useFixture(fixtures.MockPatchObject(
            ops, 'local_report', return_value=(
                [('Local Process', 'nova-compute running (pid 1)')],
                True))).mock
        cols, values = cmd.take_action(args)
        self.assertEqual(('Host', 'Local Process', 'Local OK'), cols)
        self.assertEqual(('c01', 'nova-compute running (pid 1)', True),
                         values)
        report.assert_called_once_with(log_file='/l', prefer='c01')
        cols, _ = cmd.take_action(parser.parse_args(['c01']))
        self.assertEqual(('Host',), cols)
