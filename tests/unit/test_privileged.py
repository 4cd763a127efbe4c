import subprocess
from unittest import mock

import fixtures
import testtools

from osc_nodeops.privileged import blockdev
from osc_nodeops.privileged import libvirt_domain
from osc_nodeops.privileged import nbd
from osc_nodeops.privileged import proc
from osc_nodeops.privileged import service


def _done(stdout='', returncode=0, stderr=''):
    return subprocess.CompletedProcess([], returncode, stdout, stderr)


class TestArgv(testtools.TestCase):
    """Each function builds exactly one argv."""

    def setUp(self):
        super().setUp()
        self.run = self.useFixture(fixtures.MockPatchObject(
            subprocess, 'run', return_value=_done('/dev/loop3\n'))).mock

    def argv(self):
        return self.run.call_args[0][0]

    def test_qemu_nbd_serve_read_only_with_format(self):
        nbd.qemu_nbd_serve('/s/nbd.sock', '/s/q.pid', '/i/disk', 'qcow2')
        self.assertEqual(['qemu-nbd', '--fork', '--pid-file', '/s/q.pid',
                          '-k', '/s/nbd.sock', '-f', 'qcow2', '--read-only',
                          '/i/disk'], self.argv())
        nbd.qemu_nbd_serve('/s/nbd.sock', '/s/q.pid', '/i/disk', 'raw',
                           read_only=False)
        self.assertNotIn('--read-only', self.argv())

    def test_qemu_nbd_device(self):
        nbd.qemu_nbd_connect('/dev/nbd3', '/i/disk', 'qcow2')
        self.assertEqual(['qemu-nbd', '-c', '/dev/nbd3', '-f', 'qcow2',
                          '--read-only', '/i/disk'], self.argv())
        nbd.qemu_nbd_disconnect('/dev/nbd3')
        self.assertEqual(['qemu-nbd', '-d', '/dev/nbd3'], self.argv())

    def test_loop_attach(self):
        dev = blockdev.loop_attach('/w/fuse/disk', 1048576, 20971520)
        self.assertEqual('/dev/loop3', dev)
        self.assertEqual(['losetup', '-f', '--show', '-r', '-o', '1048576',
                          '--sizelimit', '20971520', '/w/fuse/disk'],
                         self.argv())
        blockdev.loop_detach('/dev/loop3')
        self.assertEqual(['losetup', '-d', '/dev/loop3'], self.argv())

    def test_mount(self):
        blockdev.mount('/dev/loop3', '/w/mnt', 'ext4', ['ro', 'noload'])
        self.assertEqual(['mount', '-t', 'ext4', '-o', 'ro,noload',
                          '/dev/loop3', '/w/mnt'], self.argv())
        blockdev.umount('/w/mnt')
        self.assertEqual(['umount', '/w/mnt'], self.argv())

    def test_partition_table(self):
        self.run.return_value = _done(
            '{"partitiontable": {"label": "dos", "partitions": []}}')
        self.assertEqual('dos', blockdev.read_partition_table('/x')['label'])
        self.run.return_value = _done(
            '', 1, 'sfdisk: /x: does not contain a recognized partition '
            'table')
        self.assertIsNone(blockdev.read_partition_table('/x'))
        self.run.return_value = _done('', 1, 'sfdisk: cannot open /x')
        self.assertRaises(proc.PrivilegedError,
                          blockdev.read_partition_table, '/x')

    def test_probe(self):
        self.run.return_value = _done('DEVNAME=/dev/loop0\nTYPE=ext4\n')
        self.assertEqual('ext4', blockdev.probe('/dev/loop0')['TYPE'])
        self.assertEqual(['blkid', '-p', '-o', 'export', '/dev/loop0'],
                         self.argv())

    def test_service_commands(self):
        service.systemctl('mask', 'nova-compute')
        self.assertEqual(['systemctl', 'mask', 'nova-compute'], self.argv())
        service.initctl('stop', 'nova-compute')
        self.assertEqual(['initctl', 'stop', 'nova-compute'], self.argv())


class TestRun(testtools.TestCase):

    def test_failure_is_one_line(self):
        self.useFixture(fixtures.MockPatchObject(
            subprocess, 'run', return_value=_done('', 32,
                                                  'mount: /x:\n  busy\n')))
        err = self.assertRaises(proc.PrivilegedError, proc.run,
                                ['umount', '/x'])
        self.assertEqual('umount /x failed (exit 32): mount: /x: busy',
                         str(err))

    def test_missing_command(self):
        err = self.assertRaises(proc.PrivilegedError, proc.run,
                                ['no-such-command-osc-nodeops'])
        self.assertEqual('no-such-command-osc-nodeops: command not found',
                         str(err))

    def test_timeout(self):
        err = self.assertRaises(proc.PrivilegedError, proc.run,
                                ['sleep', '5'], timeout=0.2)
        self.assertIn('did not finish within', str(err))

    def test_spawn_own_session(self):
        d = self.useFixture(fixtures.TempDir()).path
        child = proc.spawn(['sh', '-c', 'echo $$; ps -o sid= -p $$'],
                           d + '/log')
        child.wait()
        with open(d + '/log') as f:
            pid, sid = f.read().split()
        self.assertEqual(pid, sid)


class TestLibvirt(testtools.TestCase):

    def test_lookup_uuid_then_name(self):
        import libvirt
        conn = mock.Mock()
        conn.lookupByUUIDString.side_effect = libvirt.libvirtError('no')
        conn.lookupByName.return_value = 'dom'
        self.assertEqual('dom', libvirt_domain.lookup(conn, 'u', 'n'))
        conn.lookupByName.side_effect = libvirt.libvirtError('no')
        self.assertIsNone(libvirt_domain.lookup(conn, 'u', 'n'))

    def test_suspend_resume_test_driver(self):
        conn = libvirt_domain.open_connection('test:///default')
        self.addCleanup(conn.close)
        dom = libvirt_domain.lookup(conn, name='test')
        self.assertEqual(libvirt_domain.RUNNING, libvirt_domain.state(dom)[0])
        libvirt_domain.suspend(dom)
        self.assertEqual(libvirt_domain.PAUSED, libvirt_domain.state(dom)[0])
        libvirt_domain.resume(dom)
        self.assertEqual(libvirt_domain.RUNNING, libvirt_domain.state(dom)[0])


class TestConfine(testtools.TestCase):

    def test_one_argv_new_namespaces_and_the_helper(self):
        import sys
        from osc_nodeops.privileged import confine
        argv = confine.argv('/s/.confined-x', '/s/mnt', ['/bin/sh', '-c',
                                                        'ls'])
        # The helper makes the user, PID, network... namespaces itself.
        self.assertEqual(['unshare', '--mount', '--propagation', 'private',
                          '--',
                          sys.executable, '-m',
                          'osc_nodeops.privileged.confine', '/s/.confined-x',
                          '/s/mnt', 'ro', '--', '/bin/sh', '-c', 'ls'], argv)
        self.assertIn('rw', confine.argv('/r', '/m', ['x'], read_write=True))

    def test_the_command_drops_every_capability(self):
        from osc_nodeops.privileged import confine
        self.assertEqual('setpriv', confine.DROP[0])
        for option in ('--no-new-privs', '--bounding-set=-all',
                       '--inh-caps=-all', '--ambient-caps=-all',
                       '--clear-groups'):
            self.assertIn(option, confine.DROP)


class TestConfinedEnv(testtools.TestCase):

    def test_only_path_home_term_lang_and_the_mount_point(self):
        import fixtures
        from osc_nodeops.ops.inspect_disk import guest
        for name, value in (('OS_PASSWORD', 'pw'), ('OS_TOKEN', 'tok'),
                            ('SSH_AUTH_SOCK', '/tmp/agent'),
                            ('LD_PRELOAD', '/x.so'), ('TERM', 'xterm'),
                            ('LANG', 'C.UTF-8'), ('HOME', '/root')):
            self.useFixture(fixtures.EnvironmentVariable(name, value))
        self.assertEqual(
            {'PATH': guest.CONFINED_PATH, 'HOME': '/tmp', 'TERM': 'xterm',
             'LANG': 'C.UTF-8', 'INSPECT_MOUNTPOINT': '/s/mnt'},
            guest.confined_env('/s/mnt'))
