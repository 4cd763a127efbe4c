import os
import socket
from unittest import mock

import fixtures
import testtools
from openstack.compute.v2 import _proxy
from openstack.compute.v2 import server as _server
from openstack import exceptions as sdk_exc

from osc_nodeops import errors
from osc_nodeops.ops import inspect_disk as ops
from osc_nodeops.ops.inspect_disk import connectors
from osc_nodeops.ops.inspect_disk import host
from osc_nodeops.ops.inspect_disk import session as session_mod
from osc_nodeops.privileged import libvirt_domain
from osc_nodeops.privileged import proc

UUID = '6695eb01-f6a4-8304-79aa-97f2502e193f'

XML = """<domain type='kvm'><name>instance-0000274a</name>
<uuid>%s</uuid><devices>
<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
<source file='%%(inst)s/%s/disk'/><target dev='vda' bus='virtio'/></disk>
<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
<source file='%%(inst)s/%s/disk.local'/><target dev='vdb'/></disk>
<disk type='file' device='cdrom'><source file='/x.iso'/>
<target dev='hdc'/></disk>
<disk type='network' device='disk'><source protocol='rbd' name='p/v'/>
<target dev='vdc'/></disk>
</devices></domain>""" % (UUID, UUID, UUID)


class TestMountOptions(testtools.TestCase):

    def test_read_only_writes_nothing(self):
        self.assertEqual(['ro', 'noload', 'nodev', 'nosuid', 'noexec'],
                         ops.mount_options('ext4'))
        self.assertIn('noload', ops.mount_options('ext3'))
        self.assertIn('norecovery', ops.mount_options('xfs'))
        self.assertIn('nologreplay', ops.mount_options('btrfs'))
        self.assertEqual(['ro', 'nodev', 'nosuid', 'noexec'],
                         ops.mount_options('ext2'))

    def test_read_write(self):
        opts = ops.mount_options('xfs', read_write=True)
        self.assertEqual('rw', opts[0])
        self.assertNotIn('norecovery', opts)


class TestDisks(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.inst = self.useFixture(fixtures.TempDir()).path
        os.makedirs(os.path.join(self.inst, UUID))
        for name in ('disk', 'disk.local'):
            open(os.path.join(self.inst, UUID, name), 'w').close()
        self.disks = ops.domain_disks(XML % {'inst': self.inst})

    def test_domain_disks_file_backed_only(self):
        self.assertEqual([('disk', 'vda', 'qcow2'),
                          ('disk.local', 'vdb', 'qcow2')],
                         [(d.name, d.target, d.fmt) for d in self.disks])

    def test_select_by_name_or_target(self):
        self.assertEqual('disk.local',
                         ops.select_disk(self.disks, 'vdb', self.inst).name)
        d = ops.select_disk(self.disks, 'disk', self.inst)
        self.assertEqual(os.path.join(self.inst, UUID, 'disk'), d.path)

    def test_unknown_disk(self):
        err = self.assertRaises(ops.InspectError, ops.select_disk,
                                self.disks, 'disk.swap', self.inst)
        self.assertIn("no disk 'disk.swap' (it has: disk (vda), "
                      "disk.local (vdb))", str(err))

    def test_missing_file(self):
        os.unlink(os.path.join(self.inst, UUID, 'disk.local'))
        err = self.assertRaises(ops.InspectError, ops.select_disk,
                                self.disks, 'disk.local', self.inst)
        self.assertIn('disk disk.local is missing', str(err))

    def test_path_escaping_instances_dir(self):
        disks = [ops.Disk('disk', os.path.join(self.inst, UUID, '..', '..',
                                               'etc', 'disk'), 'vda',
                          'qcow2')]
        err = self.assertRaises(ops.InspectError, ops.select_disk, disks,
                                'disk', self.inst)
        self.assertIn('outside the instances directory', str(err))

    def test_symlink_escaping_instances_dir(self):
        outside = self.useFixture(fixtures.TempDir()).path
        open(os.path.join(outside, 'secret'), 'w').close()
        link = os.path.join(self.inst, UUID, 'disk.eph0')
        os.symlink(os.path.join(outside, 'secret'), link)
        disks = [ops.Disk('disk.eph0', link, 'vdc', 'raw')]
        self.assertRaises(ops.InspectError, ops.select_disk, disks,
                          'disk.eph0', self.inst)

    def test_unsupported_format(self):
        disks = [ops.Disk('disk', os.path.join(self.inst, UUID, 'disk'),
                          'vda', 'vmdk')]
        err = self.assertRaises(ops.InspectError, ops.select_disk, disks,
                                'disk', self.inst)
        self.assertIn("format 'vmdk'", str(err))


class TestTarget(testtools.TestCase):

    def _compute(self, server=None, found=True):
        compute = mock.create_autospec(_proxy.Proxy, instance=True)
        server = server or _server.Server(
            id=UUID, name='vm1', instance_name='instance-0000274a',
            compute_host='c01')
        compute.find_server.return_value = server if found else None
        compute.get_server.return_value = server
        return compute

    def test_resolve(self):
        compute = self._compute()
        t = ops.resolve_server(compute, 'vm1')
        self.assertEqual(ops.Target(UUID, 'vm1', 'instance-0000274a', 'c01'),
                         t)
        compute.find_server.assert_called_once_with(
            'vm1', ignore_missing=True, all_projects=True)

    def test_not_found(self):
        err = self.assertRaises(ops.InspectError, ops.resolve_server,
                                self._compute(found=False), 'x')
        self.assertEqual("no server 'x'", str(err))

    def test_duplicate(self):
        compute = self._compute()
        compute.find_server.side_effect = sdk_exc.DuplicateResource('dup')
        err = self.assertRaises(ops.InspectError, ops.resolve_server,
                                compute, 'vm1')
        self.assertIn('use its ID', str(err))

    def test_no_admin_attributes(self):
        compute = self._compute(_server.Server(id=UUID, name='vm1'))
        err = self.assertRaises(ops.InspectError, ops.resolve_server,
                                compute, 'vm1')
        self.assertIn('needs admin credentials', str(err))

    def test_not_on_this_node(self):
        t = ops.Target(UUID, 'vm1', 'instance-0000274a', 'c02')
        err = self.assertRaises(ops.InspectError, ops.check_target, t, 'c01')
        self.assertIn('is on host c02, not on this node (c01)', str(err))
        ops.check_target(t, 'c02')

    def test_instance_name_escaping(self):
        for bad in ('../../etc/passwd', 'a/b', '..', '', '.hidden'):
            t = ops.Target(UUID, 'vm1', bad, 'c01')
            err = self.assertRaises(ops.InspectError, ops.check_target, t,
                                    'c01')
            self.assertIn('not a plain file name', str(err))

    def test_local_host(self):
        d = self.useFixture(fixtures.TempDir()).path
        conf = os.path.join(d, 'nova.conf')
        self.assertEqual('given', ops.local_host('given', conf))
        self.assertEqual(socket.gethostname(), ops.local_host(None, conf))
        with open(conf, 'w') as f:
            f.write('[DEFAULT]\nhost = c07\ninstances_path = /srv/i\n'
                    '[libvirt]\nx = %(y)s\n')
        self.assertEqual('c07', ops.local_host(None, conf))
        self.assertEqual('/srv/i', ops.instances_path(None, conf))
        self.assertEqual('/a', ops.instances_path('/a', conf))
        self.assertEqual(ops.DEFAULT_INSTANCES_PATH,
                         ops.instances_path(None, os.path.join(d, 'no')))


class FakeSys(fixtures.Fixture):
    """A /sys tree with nbd devices; ``busy`` ones have a pid file."""

    def __init__(self, count=4, busy=()):
        self.count = count
        self.busy = busy

    def _setUp(self):
        self.root = self.useFixture(fixtures.TempDir()).path
        os.makedirs(os.path.join(self.root, 'module', 'nbd'))
        for i in range(self.count):
            d = os.path.join(self.root, 'block', 'nbd%d' % i)
            os.makedirs(d)
            if i in self.busy:
                self.set_busy(i)
        os.makedirs(os.path.join(self.root, 'block', 'loop0'))

    def set_busy(self, i):
        with open(os.path.join(self.root, 'block', 'nbd%d' % i, 'pid'),
                  'w') as f:
            f.write('123\n')


class TestNbdAllocation(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.lock_dir = self.useFixture(fixtures.TempDir()).path

    def test_free_devices_in_numeric_order(self):
        fs = self.useFixture(FakeSys(count=12, busy=(0, 2)))
        free = ops.free_nbd_devices(fs.root)
        self.assertEqual(['nbd1', 'nbd3', 'nbd4'], free[:3])
        self.assertEqual('nbd11', free[-1])

    def test_allocates_first_free_and_waits_for_pid(self):
        fs = self.useFixture(FakeSys(busy=(0,)))
        calls = []

        def connect(device, path, fmt, read_only):
            calls.append((device, path, fmt, read_only))
            fs.set_busy(int(device[-1]))

        dev = ops.allocate_nbd('/i/disk', 'qcow2', True, sys_root=fs.root,
                               dev_root='/dev', lock_dir=self.lock_dir,
                               connect=connect)
        self.assertEqual('/dev/nbd1', dev)
        self.assertEqual([('/dev/nbd1', '/i/disk', 'qcow2', True)], calls)

    def test_retries_when_a_device_is_taken_meanwhile(self):
        fs = self.useFixture(FakeSys())
        tried = []

        def connect(device, path, fmt, read_only):
            tried.append(device)
            n = int(device[-1])
            fs.set_busy(n)
            if n < 2:  # someone else took it between check and connect
                raise proc.PrivilegedError('busy')

        dev = ops.allocate_nbd('/i/disk', 'raw', True, sys_root=fs.root,
                               lock_dir=self.lock_dir, connect=connect)
        self.assertEqual('/dev/nbd2', dev)
        self.assertEqual(['/dev/nbd0', '/dev/nbd1', '/dev/nbd2'], tried)

    def test_bounded_retries(self):
        fs = self.useFixture(FakeSys(count=10))
        connect = mock.Mock(side_effect=proc.PrivilegedError('no'))
        err = self.assertRaises(ops.InspectError, ops.allocate_nbd, '/d',
                                'raw', True, sys_root=fs.root,
                                lock_dir=self.lock_dir, retries=3,
                                connect=connect)
        self.assertEqual(3, connect.call_count)
        self.assertIn('tried nbd0, nbd1, nbd2', str(err))

    def test_no_free_device(self):
        fs = self.useFixture(FakeSys(count=2, busy=(0, 1)))
        connect = mock.Mock()
        err = self.assertRaises(ops.InspectError, ops.allocate_nbd, '/d',
                                'raw', True, sys_root=fs.root,
                                lock_dir=self.lock_dir, connect=connect)
        self.assertEqual('no free nbd device (every /dev/nbdX is in use)',
                         str(err))
        connect.assert_not_called()

    def test_device_never_shows_pid_is_disconnected(self):
        fs = self.useFixture(FakeSys(count=1))
        self.useFixture(fixtures.MockPatchObject(
            connectors.nbd, 'qemu_nbd_disconnect'))
        err = self.assertRaises(ops.InspectError, ops.allocate_nbd, '/d',
                                'raw', True, sys_root=fs.root,
                                lock_dir=self.lock_dir, wait_timeout=0.1,
                                connect=mock.Mock())
        self.assertIn('tried nbd0', str(err))
        connectors.nbd.qemu_nbd_disconnect.assert_called_once_with('/dev/nbd0')

    def test_lock_directory_must_be_root_only(self):
        os.chmod(self.lock_dir, 0o1777)
        fs = self.useFixture(FakeSys())
        connect = mock.Mock()
        err = self.assertRaises(ops.InspectError, ops.allocate_nbd, '/d',
                                'raw', True, sys_root=fs.root,
                                lock_dir=self.lock_dir, connect=connect)
        self.assertIn('refusing the nbd lock directory', str(err))
        connect.assert_not_called()

    def test_lock_wait_is_bounded(self):
        import fcntl
        import time
        lock = connectors.AllocationLock(self.lock_dir, timeout=0.3)
        fd = os.open(lock.path, os.O_RDWR | os.O_CREAT, 0o600)
        self.addCleanup(os.close, fd)
        fcntl.flock(fd, fcntl.LOCK_EX)  # another process holds it
        start = time.monotonic()
        err = self.assertRaises(ops.InspectError, lock.acquire)
        self.assertLess(time.monotonic() - start, 5)
        self.assertIn('held by another process for more than 0.3 s',
                      str(err))
        fcntl.flock(fd, fcntl.LOCK_UN)
        with lock:
            self.assertIsNotNone(lock.fd)
        self.assertIsNone(lock.fd)

    def test_stale_cleanup_leaves_a_device_serving_another_disk(self):
        fs = self.useFixture(FakeSys(count=1, busy=(0,)))  # pid 123
        disconnect = self.useFixture(fixtures.MockPatchObject(
            connectors.nbd, 'qemu_nbd_disconnect')).mock
        fail = mock.Mock()
        theirs = connectors.from_record(
            {'connector': 'nbd', 'device': '/dev/nbd0', 'pid': 999},
            sys_root=fs.root)
        ok, done = theirs.disconnect(fail)
        self.assertTrue(ok)
        self.assertIn('left alone: it serves another disk now', done[0])
        disconnect.assert_not_called()
        # Killed before the pid was journalled: the command line decides.
        unknown = connectors.from_record(
            {'connector': 'nbd', 'device': '/dev/nbd0', 'disk': '/i/disk'},
            sys_root=fs.root)
        self.assertEqual((True, ['/dev/nbd0 left alone: it serves another '
                                 'disk now (pid 123)']),
                         unknown.disconnect(fail))
        ours = connectors.from_record(
            {'connector': 'nbd', 'device': '/dev/nbd0', 'pid': 123},
            sys_root=fs.root)
        self.assertEqual((True, ['/dev/nbd0']), ours.disconnect(fail))
        disconnect.assert_called_once_with('/dev/nbd0')
        fail.assert_not_called()

    def test_choose_connector(self):
        fs = self.useFixture(FakeSys())
        none = self.useFixture(fixtures.TempDir()).path
        fuse = os.path.join(none, 'fuse')
        open(fuse, 'w').close()
        self.assertEqual('nbd', ops.choose_connector('auto', fs.root, fuse))
        self.useFixture(fixtures.MockPatchObject(
            proc, 'which', return_value='/usr/bin/nbdfuse'))
        self.assertEqual('fuse', ops.choose_connector('auto', none, fuse))
        self.assertEqual('fuse', ops.choose_connector('fuse', fs.root, fuse))
        err = self.assertRaises(ops.InspectError, ops.choose_connector,
                                'nbd', none, fuse)
        self.assertIn('nbd kernel module is not loaded', str(err))
        self.assertRaises(ops.InspectError, ops.choose_connector, 'auto',
                          none, os.path.join(none, 'nope'))


class TestPartitions(testtools.TestCase):

    TABLE = {'label': 'gpt', 'sectorsize': 512, 'partitions': [
        {'node': '/x/disk1', 'start': 2048, 'size': 2048,
         'type': '21686148-6449-6E6F-744E-656564454649'},
        {'node': '/x/disk2', 'start': 4096, 'size': 8192,
         'type': '0FC63DAF-8483-4772-8E79-3D69D8477DE4'},
        {'node': '/x/disk3', 'start': 12288, 'size': 100, 'type': '83'}]}

    def test_first_linux_partition(self):
        parts = ops.partitions(self.TABLE)
        p = ops.choose_partition(parts)
        self.assertEqual((2, 4096 * 512, 8192 * 512), (p.number, p.offset,
                                                        p.size))
        self.assertEqual(3, ops.choose_partition(parts, 3).number)

    def test_whole_disk(self):
        p = ops.choose_partition(ops.partitions(None, 1 << 20))
        self.assertEqual((0, 0, 1 << 20), (p.number, p.offset, p.size))

    def test_missing_or_no_linux(self):
        parts = ops.partitions(self.TABLE)
        err = self.assertRaises(ops.InspectError, ops.choose_partition,
                                parts, 9)
        self.assertEqual('no partition 9 (the disk has: 1, 2, 3)', str(err))
        err = self.assertRaises(ops.InspectError, ops.choose_partition,
                                parts[:1])
        self.assertIn('no Linux partition found', str(err))


class TestGuestPath(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.root = self.useFixture(fixtures.TempDir()).path
        os.makedirs(os.path.join(self.root, 'etc'))
        os.makedirs(os.path.join(self.root, 'usr', 'lib'))
        os.symlink('/etc', os.path.join(self.root, 'abs'))
        os.symlink('../../../../..', os.path.join(self.root, 'usr', 'up'))
        os.symlink('loop', os.path.join(self.root, 'loop'))

    def test_absolute_links_restart_at_root(self):
        self.assertEqual(os.path.join(self.root, 'etc', 'passwd'),
                         ops.guest_path(self.root, '/abs/passwd'))

    def test_dotdot_never_climbs_above_root(self):
        self.assertEqual(os.path.join(self.root, 'etc'),
                         ops.guest_path(self.root, '/../../../etc'))
        self.assertEqual(os.path.join(self.root, 'etc'),
                         ops.guest_path(self.root, 'usr/up/etc'))

    def test_last_component(self):
        self.assertEqual(os.path.join(self.root, 'abs'),
                         ops.guest_path(self.root, '/abs'))
        self.assertEqual(os.path.join(self.root, 'etc'),
                         ops.guest_path(self.root, '/abs', follow_last=True))

    def test_link_loop(self):
        self.assertRaises(ops.InspectError, ops.guest_path, self.root,
                          '/loop/x')


class TestJournal(testtools.TestCase):

    def test_lock_is_exclusive_and_stale_when_released(self):
        d = self.useFixture(fixtures.TempDir()).path
        a = ops.Journal(d, UUID)
        b = ops.Journal(d, UUID)
        self.assertTrue(a.acquire())
        self.assertFalse(b.acquire())
        a.record(suspend={'prior_state': 'running'})
        a.record(suspend={'done': True})
        self.assertEqual({'prior_state': 'running', 'done': True},
                         b.load()['suspend'])
        self.assertEqual([UUID], ops.list_journals(d))
        a.release()
        self.assertTrue(b.acquire())
        b.remove()
        b.release()
        self.assertEqual([], ops.list_journals(d))


class TestStateDirTrust(testtools.TestCase):

    def test_journals_in_a_writable_state_dir_are_not_trusted(self):
        self.useFixture(fixtures.MockPatchObject(proc, 'is_root',
                                                 return_value=True))
        d = os.path.join(self.useFixture(fixtures.TempDir()).path, 's')
        j = ops.Journal(d, UUID)
        j.acquire()
        # Planted by a local user: root would unmount, kill and resume
        # what it names.
        j.record(server_id=UUID, mount={'mountpoint': '/'},
                 connect={'connector': 'fuse', 'qemu_pid_file': '/run/x'})
        j.release()
        teardown = self.useFixture(fixtures.MockPatchObject(
            session_mod, 'teardown')).mock
        for mode in (0o777, 0o1777, 0o770):
            os.chmod(d, mode)
            err = self.assertRaises(ops.InspectError, ops.cleanup, d)
            self.assertIn('refusing the state directory', str(err))
        teardown.assert_not_called()
        os.chmod(d, 0o700)
        ops.cleanup(d)
        teardown.assert_called_once()


def _domain(state=libvirt_domain.RUNNING):
    dom = mock.Mock()
    dom.state.return_value = [state, 0]
    return dom


class TestSessionPreflight(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.d = self.useFixture(fixtures.TempDir()).path
        self.target = ops.Target(UUID, 'vm1', 'instance-0000274a', 'c01')
        self.dom = _domain()
        self.conn = mock.Mock()
        self.conn.lookupByUUIDString.return_value = self.dom
        self.opened = []

    def session(self, **kw):
        args = dict(target=self.target, approved_by='a', reason='r',
                    state_dir=os.path.join(self.d, 's'),
                    audit_log=os.path.join(self.d, 'audit.log'),
                    instances_path=self.d)
        args.update(kw)

        def open_libvirt(uri):
            self.opened.append(uri)
            return self.conn
        return ops.Session(ops.Request(**args), open_libvirt=open_libvirt)

    def test_not_root(self):
        self.useFixture(fixtures.MockPatchObject(proc, 'is_root',
                                                 return_value=False))
        err = self.assertRaises(ops.InspectError, self.session().run,
                                mock.Mock())
        self.assertIn('must run as root', str(err))
        self.assertEqual([], self.opened)
        self.dom.suspend.assert_not_called()

    def test_missing_approval(self):
        self.useFixture(fixtures.MockPatchObject(proc, 'is_root',
                                                 return_value=True))
        err = self.assertRaises(errors.UsageError,
                                self.session(reason='').run, mock.Mock())
        self.assertIn('--reason TEXT are required', str(err))
        self.assertEqual([], self.opened)

    def test_domain_not_found(self):
        import libvirt
        self.useFixture(fixtures.MockPatchObject(proc, 'is_root',
                                                 return_value=True))
        self.conn.lookupByUUIDString.side_effect = libvirt.libvirtError('x')
        self.conn.lookupByName.side_effect = libvirt.libvirtError('x')
        err = self.assertRaises(ops.InspectError, self.session().run,
                                mock.Mock())
        self.assertIn('no libvirt domain instance-0000274a', str(err))

    def test_no_free_nbd_device_refused_before_suspend(self):
        fs = self.useFixture(FakeSys(count=1, busy=(0,)))
        self.useFixture(fixtures.MockPatchObject(proc, 'is_root',
                                                 return_value=True))
        os.makedirs(os.path.join(self.d, UUID))
        open(os.path.join(self.d, UUID, 'disk'), 'w').close()
        self.dom.XMLDesc.return_value = XML % {'inst': self.d}
        s = self.session(connector='nbd')
        s.sys_root = fs.root
        inspect = mock.Mock()
        err = self.assertRaises(ops.InspectError, s.run, inspect)
        self.assertIn('no free nbd device', str(err))
        self.dom.suspend.assert_not_called()
        inspect.assert_not_called()
        self.assertFalse(os.path.exists(os.path.join(self.d, 'audit.log')))

    def test_nbd_lock_taken_before_the_pause(self):
        import fcntl
        fs = self.useFixture(FakeSys(count=2))
        self.useFixture(fixtures.MockPatchObject(proc, 'is_root',
                                                 return_value=True))
        os.makedirs(os.path.join(self.d, UUID))
        open(os.path.join(self.d, UUID, 'disk'), 'w').close()
        self.dom.XMLDesc.return_value = XML % {'inst': self.d}
        s = self.session(connector='nbd')
        s.sys_root = fs.root
        s.nbd_lock_dir = os.path.join(self.d, 'lock')
        seen = []

        def suspend():
            fd = os.open(os.path.join(s.nbd_lock_dir, 'nbd-allocation.lock'),
                         os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                seen.append('free')
            except BlockingIOError:
                seen.append('held')
            finally:
                os.close(fd)
            raise RuntimeError('stop here')

        self.dom.suspend.side_effect = suspend
        self.assertRaises(ops.InspectError, s.run, mock.Mock())
        self.assertEqual(['held'], seen)
        self.assertIsNone(s.nbd_lock)  # released by the teardown



class TestTeardown(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.d = self.useFixture(fixtures.TempDir()).path
        self.j = ops.Journal(self.d, UUID)
        self.dom = _domain(libvirt_domain.PAUSED)
        self.conn = mock.Mock()
        self.conn.lookupByUUIDString.return_value = self.dom
        self.useFixture(fixtures.MockPatchObject(host, 'mounted',
                                                 return_value=True))
        self.umount = self.useFixture(fixtures.MockPatchObject(
            session_mod.blockdev, 'umount')).mock
        self.useFixture(fixtures.MockPatchObject(host, 'loops_backed_by',
                                                 return_value=[]))
        import time
        self.useFixture(fixtures.MockPatchObject(time, 'sleep'))

    def _journal(self, read_write):
        self.j.acquire()
        self.j.record(server_id=UUID, instance_name='instance-0000274a',
                      libvirt_uri='test:///x', read_write=read_write,
                      suspend={'prior_state': 'running', 'done': True},
                      mount={'mountpoint': os.path.join(self.d, 'mnt')})

    def test_read_write_busy_mount_leaves_domain_paused_loudly(self):
        self._journal(read_write=True)
        self.umount.side_effect = proc.PrivilegedError('target is busy')
        steps = ops.teardown(self.j, conn=self.conn)
        self.assertEqual([('unmount', 'failed'), ('resume', 'failed')],
                         [(s.step, s.result) for s in steps])
        self.assertIn('domain left PAUSED', steps[-1].detail)
        self.dom.resume.assert_not_called()
        self.assertEqual(5, self.umount.call_count)  # bounded retries

    def test_read_only_busy_mount_still_resumes(self):
        self._journal(read_write=False)
        self.umount.side_effect = proc.PrivilegedError('target is busy')
        steps = ops.teardown(self.j, conn=self.conn)
        self.assertEqual([('unmount', 'failed'), ('resume', 'done')],
                         [(s.step, s.result) for s in steps])
        self.dom.resume.assert_called_once_with()

    def test_not_suspended_by_us_is_not_resumed(self):
        self.j.acquire()
        self.j.record(server_id=UUID, libvirt_uri='test:///x',
                      suspend={'prior_state': 'paused', 'done': False})
        steps = ops.teardown(self.j, conn=self.conn)
        self.assertEqual([('resume', 'not needed')],
                         [(s.step, s.result) for s in steps])
        self.dom.resume.assert_not_called()


class TestCommand(testtools.TestCase):

    def test_cleanup_never_logs_in(self):
        # cliff is told no login is needed (base._NodeOpsCommand logs in
        # at the first cloud call), and --cleanup makes none: it works
        # from the journals alone, with the API down at 3 a.m.
        from osc_nodeops.v1 import inspect
        self.assertFalse(inspect.InspectDisk.auth_required)
        app = mock.Mock()
        cmd = inspect.InspectDisk(app, mock.Mock())
        with mock.patch('osc_nodeops.ops.inspect_disk.inspect',
                        return_value=mock.Mock(columns=(), rows=[],
                                               exit_status=0)) as run:
            cmd.take_action(cmd.get_parser('x').parse_args(['--cleanup']))
        self.assertIsNone(run.call_args[0][0])      # no connection
        app.prepare_to_run_command.assert_not_called()
        app.client_manager.sdk_connection.assert_not_called()

    def test_parser_actions_exclusive(self):
        from osc_nodeops.v1 import inspect
        cmd = inspect.InspectDisk(mock.Mock(), mock.Mock())
        parser = cmd.get_parser('inspect-disk')
        args = parser.parse_args(['vm1', '--copy-out', '/etc', '/tmp/x',
                                  '--disk', 'disk.local', '--partition',
                                  '0'])
        self.assertEqual(['/etc', '/tmp/x'], args.copy_out)
        self.assertEqual(0, args.partition)
        self.assertEqual('qemu:///system', cmd.request(args).libvirt_uri)
        self.assertRaises(SystemExit, parser.parse_args,
                          ['vm1', '--list', '/', '--shell'])
        self.assertEqual(('exec', ['ls']), cmd._action(
            parser.parse_args(['vm1', '--exec', 'ls'])))
        self.assertEqual((None, []), cmd._action(parser.parse_args(['vm1'])))
        err = self.assertRaises(errors.UsageError, ops.inspect, None,
                                ops.Request(server='vm1', action=None))
        self.assertIn('say what to do: --list PATH', str(err))


class TestCopyOut(testtools.TestCase):
    """--copy-out writes data only, and only to names it creates."""

    def setUp(self):
        super().setUp()
        from osc_nodeops.ops.inspect_disk import guest
        self.guest = guest
        self.d = self.useFixture(fixtures.TempDir()).path
        self.root = os.path.join(self.d, 'guest')
        os.makedirs(self.root)
        with open(os.path.join(self.root, 'f'), 'w') as f:
            f.write('guest data\n')
        self.victim = os.path.join(self.d, 'victim')
        with open(self.victim, 'w') as f:
            f.write('host file\n')

    def test_link_planted_after_the_check_is_not_written_through(self):
        dest = os.path.join(self.d, 'out')
        real = os.path.lexists

        def lexists(p):
            if p == dest:
                # The check passes, then a link appears: the race.
                if not os.path.islink(dest):
                    os.symlink(self.victim, dest)
                return False
            return real(p)

        self.useFixture(fixtures.MockPatch('os.path.lexists', lexists))
        self.assertRaises(errors.NodeOpsError, self.guest.copy_out,
                          self.root, '/f', dest)
        with open(self.victim) as f:
            self.assertEqual('host file\n', f.read())

    def test_modes_capped(self):
        self.assertEqual(0o755, self.guest.file_mode(0o104755))
        self.assertEqual(0o644, self.guest.file_mode(0o100666))
        self.assertEqual(0o600, self.guest.file_mode(0o100600))
        self.assertEqual(0o755, self.guest.dir_mode(0o041777))
        self.assertEqual(0o700, self.guest.dir_mode(0o040000))


class TestRequestChecks(testtools.TestCase):

    def test_step_timeout_must_be_finite_and_positive(self):
        # nan compares false with everything: a wait for ever.
        for bad in (float('nan'), float('inf'), 0, -1.0):
            req = ops.Request(server='vm1', approved_by='a', reason='r',
                              step_timeout=bad)
            err = self.assertRaises(errors.UsageError, ops.inspect, None, req)
            self.assertIn('--step-timeout must be a positive number',
                          str(err))

    def test_step_timeout_refused_by_the_parser(self):
        from osc_nodeops.v1 import inspect
        cmd = inspect.InspectDisk(mock.Mock(), mock.Mock())
        parser = cmd.get_parser('inspect-disk')
        for bad in ('nan', 'inf', '-3', '0'):
            self.assertRaises(SystemExit, parser.parse_args,
                              ['vm1', '--list', '/', '--step-timeout', bad])
        self.assertEqual(2.5, parser.parse_args(
            ['vm1', '--list', '/', '--step-timeout', '2.5']).step_timeout)
