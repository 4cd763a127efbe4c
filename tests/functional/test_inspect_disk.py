"""``openstack instance inspect-disk``: real disks, real mounts, for real.

Two classes:

``InspectDiskLocalTest``
    the ops layer in-process (no API): a qcow2 with a partition table and
    ext4, a second whole-disk ext4 as ``disk.local``, a libvirt test-driver
    domain, the fuse connector.  libvirt's ``test:///FILE.xml`` driver keeps
    domain state *per connection* (a second ``libvirt.open`` of the same URI,
    even in the same process, sees the domain running again), so these tests
    share one connection with the code under test to watch the domain go
    paused and come back running, including a simulated crash followed by
    ``cleanup``.

``InspectDiskCLITest``
    the real ``openstack`` CLI against the minicloud: the server is resolved
    through the API (its ``OS-EXT-SRV-ATTR:instance_name`` names the
    test-driver domain, its ID is the domain UUID).  Normal exit, an
    exception in the inspect step, Ctrl-C, SIGTERM, and SIGKILL before and
    after each of the six steps followed by ``--cleanup``.  Across processes
    the test driver cannot show a paused domain (each process has its own
    copy), so what is checked there is what is observable: the journal, the
    mounts, loop devices and helper processes, and the clean-up's rows.

After every test nothing is left: no mount, loop device, nbdfuse or
qemu-nbd process under the test's directory (``inspect_helpers.leftovers``).
"""

import io
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import fixtures
import testtools

from tests.functional import base
from tests.functional import inspect_helpers as helpers

FILES = {
    'hello.txt': 'hello from the guest\n',
    'etc/hostname': 'guest1\n',
    'etc/hostname-link': ('symlink', '/etc/hostname'),
    'up': ('symlink', '../../../../../../../etc'),
    # What a hostile guest can hold.
    'hostile/suid': ('file', '#!/bin/sh\necho root\n', 0o4755,
                     {'user.note': b'from the guest'}),
    'hostile/open': ('file', 'world writable\n', 0o666),
    'hostile/null': ('chardev', 1, 3),
    'hostile/app.log': ('symlink', '/etc/shadow'),
    'hostile/victim': ('symlink', '/run/osc-nodeops-inspect-test-victim'),
    'hostile': ('dir', 0o777),
    # /etc under git (etckeeper): an ordinary `git status` there runs the
    # guest's core.fsmonitor hook, which reports what it can see and
    # tries to leave the confinement (see PROBE).
    'etc/.git/HEAD': 'ref: refs/heads/master\n',
    'etc/.git/objects': ('dir', 0o755),
    'etc/.git/refs': ('dir', 0o755),
    'etc/.git/config': ('[core]\n\trepositoryformatversion = 0\n'
                        '\tfsmonitor = python3 .git/fsmonitor-hook\n'),
}
# The guest's hook, run by the host's git through the confined command's
# own PATH lookup of python3.  It prints one line, "PROBE {json}", to
# stderr (git reads the hook's stdout) saying what it saw: its environment,
# whether it reached a listener of the host's 127.0.0.1 (PROBE_PORT) and
# which network interfaces it has; then it tries the classic chroot escape
# (chroot into a subdirectory while holding the old root open, fchdir back
# to it, climb "..", chroot there) and writes PROBE_MARKER, a path on the
# host.
PROBE = '''
import json, os, socket, sys
report = {'uid': os.getuid(), 'env': dict(os.environ)}
try:
    socket.create_connection(
        ('127.0.0.1', int(os.environ['PROBE_PORT'])), timeout=5).close()
    report['connect'] = 'connected'
except OSError as exc:
    report['connect'] = exc.strerror or str(exc)
report['interfaces'] = sorted(name for _, name in socket.if_nameindex())
marker = os.environ['PROBE_MARKER']
try:
    os.makedirs('/tmp/jail', exist_ok=True)
    old_root = os.open('/', os.O_RDONLY)
    os.chroot('/tmp/jail')
    os.fchdir(old_root)
    for _ in range(64):
        os.chdir('..')
    os.chroot('.')
    with open(marker, 'w') as f:
        f.write('escaped\\n')
    report['escape'] = 'wrote ' + marker
except OSError as exc:
    report['escape'] = '%s: %s' % (type(exc).__name__, exc.strerror)
sys.stderr.write('PROBE %s\\n' % json.dumps(report))
'''
FILES['etc/.git/fsmonitor-hook'] = PROBE
NAMESPACES = ('user', 'mnt', 'pid', 'net', 'ipc', 'uts')
# What the operator's environment holds and the guest must never see.
SECRETS = {'OS_PASSWORD': 'probe-secret-password',
           'OS_TOKEN': 'gAAAAAprobe-secret-token',
           'OS_AUTH_URL': 'http://127.0.0.1:5000/v3',
           'SSH_AUTH_SOCK': '/tmp/ssh-probe-agent.sock'}
LOCAL_FILES = {'data.txt': 'ephemeral data\n'}


class _Rig(object):
    """Disks, domain XML and paths under one temporary directory."""

    def make_rig(self, server_id, instance_name, outside_disk=False):
        self.root = tempfile.mkdtemp(prefix='osc-nodeops-inspect-')
        self.addCleanup(self._remove_root)
        self.instances = os.path.join(self.root, 'instances')
        self.state_dir = os.path.join(self.root, 'state')
        self.audit_log = os.path.join(self.root, 'audit.log')
        inst_dir = os.path.join(self.instances, server_id)
        os.makedirs(inst_dir)
        self.disk = helpers.make_disk(os.path.join(inst_dir, 'disk'), FILES)
        self.disk_local = helpers.make_disk(
            os.path.join(inst_dir, 'disk.local'), LOCAL_FILES,
            partitioned=False)
        disks = [(self.disk, 'vda', 'qcow2'),
                 (self.disk_local, 'vdb', 'qcow2')]
        if outside_disk:
            other = os.path.join(self.root, 'elsewhere')
            os.makedirs(other)
            self.outside = helpers.make_disk(os.path.join(other, 'disk.eph0'),
                                             LOCAL_FILES, partitioned=False)
            # Through the instances directory, then out of it.
            disks.append((os.path.join(inst_dir, '..', '..', 'elsewhere',
                                       'disk.eph0'), 'vdc', 'qcow2'))
        self.xml_path = os.path.join(self.root, 'node.xml')
        helpers.domain_xml(instance_name, server_id, disks, self.xml_path)
        self.uri = 'test://%s' % self.xml_path
        self.journal_path = os.path.join(self.state_dir,
                                         'inspect-%s.json' % server_id)

    def _remove_root(self):
        if helpers.leftovers(self.root):
            # The test has failed already (assertNothingLeft); do not leave
            # mounts, loop devices and helpers on the machine as well: undo
            # them with the command's own cleanup.
            from osc_nodeops.ops import inspect_disk as ops
            ops.cleanup(self.state_dir, audit_log=self.audit_log)
        if not helpers.leftovers(self.root):
            shutil.rmtree(self.root, ignore_errors=True)

    def assertNothingLeft(self):
        self.assertEqual([], helpers.leftovers(self.root))
        self.assertFalse(os.path.exists(self.journal_path),
                         'journal %s left behind' % self.journal_path)

    def audit_records(self):
        if not os.path.exists(self.audit_log):
            return []
        with open(self.audit_log) as f:
            return [json.loads(line) for line in f]


class InspectDiskLocalTest(_Rig, testtools.TestCase):

    def setUp(self):
        super().setUp()
        why = helpers.missing_requirements()
        if why:
            print('skipping local inspect tests: %s' % why, file=sys.stderr)
            self.skipTest(why)
        import libvirt
        from osc_nodeops.ops import inspect_disk as ops
        self.ops = ops
        self.server_id = str(uuid.uuid4())
        self.instance_name = 'instance-0000274a'
        self.make_rig(self.server_id, self.instance_name, outside_disk=True)
        self.conn = libvirt.open(self.uri)
        self.addCleanup(self.conn.close)
        self.dom = self.conn.lookupByUUIDString(self.server_id)
        self.events = []

    def state(self):
        return self.dom.state()[0]

    def session(self, **kw):
        target = self.ops.Target(self.server_id, 'vm1', self.instance_name,
                                 'c01')
        args = dict(target=target, approved_by='alice', reason='ticket 42',
                    connector='fuse', libvirt_uri=self.uri,
                    instances_path=self.instances, state_dir=self.state_dir,
                    audit_log=self.audit_log)
        args.update(kw)
        return self.ops.Session(self.ops.Request(**args),
                                events=self.events.append,
                                open_libvirt=lambda uri: self.conn)

    def test_list_read_only_then_everything_undone(self):
        before = helpers.sha256(self.disk)
        seen = {}

        def inspect(mp):
            seen['state'] = self.state()
            seen['mounted'] = helpers.leftovers(self.root)
            try:
                open(os.path.join(mp, 'new-file'), 'w').close()
                seen['write'] = 'succeeded'
            except OSError as exc:
                seen['write'] = exc.strerror
            return self.ops.list_path(mp, '/')

        rows, steps = self.session().run(inspect)
        import libvirt
        self.assertEqual(libvirt.VIR_DOMAIN_PAUSED, seen['state'])
        self.assertTrue(any(x.startswith('mount ') for x in seen['mounted']))
        self.assertTrue(any('nbdfuse' in x for x in seen['mounted']))
        self.assertTrue(any('qemu-nbd' in x for x in seen['mounted']))
        self.assertEqual('Read-only file system', seen['write'])
        names = [r[0] for r in rows]
        self.assertEqual(['etc', 'hello.txt', 'hostile', 'lost+found', 'up'],
                         names)
        self.assertEqual(
            ['suspend', 'connect', 'mount', 'unmount', 'disconnect',
             'resume'], [s.step for s in steps])
        self.assertEqual(['done'] * 6, [s.result for s in steps])
        self.assertIn('noload', steps[2].detail)
        self.assertEqual(libvirt.VIR_DOMAIN_RUNNING, self.state())
        self.assertNothingLeft()
        # Read-only truly wrote nothing to the image.
        self.assertEqual(before, helpers.sha256(self.disk))
        recs = self.audit_records()
        self.assertEqual(['started', 'finished'], [r['event'] for r in recs])
        for r in recs:
            self.assertEqual('alice', r['approved_by'])
            self.assertEqual('ticket 42', r['reason'])
            self.assertEqual(self.server_id, r['server_id'])
            self.assertEqual(self.disk, r['disk'])
        self.assertEqual('done', recs[1]['outcome'])
        self.assertEqual(1, recs[1]['partition'])

    def test_disk_local_whole_disk_and_cat(self):
        out = io.BytesIO()
        n, steps = self.session(disk='disk.local').run(
            lambda mp: self.ops.cat_path(mp, '/data.txt', out))
        self.assertEqual(b'ephemeral data\n', out.getvalue())
        self.assertEqual(len(out.getvalue()), n)
        self.assertIn('partition 0', steps[2].detail)
        self.assertNothingLeft()

    def test_guest_links_stay_inside_the_guest(self):
        out = io.BytesIO()

        def inspect(mp):
            self.ops.cat_path(mp, '/etc/hostname-link', out)
            # 'up' climbs far above the guest root: it stays at the root.
            return self.ops.list_path(mp, '/up/')

        rows, _ = self.session().run(inspect)
        self.assertEqual(b'guest1\n', out.getvalue())
        self.assertEqual(['.git', 'hostname', 'hostname-link'],
                         [r[0] for r in rows])
        self.assertNothingLeft()

    def test_copy_out_never_overwrites(self):
        dest = os.path.join(self.root, 'out')
        os.makedirs(dest)
        with open(os.path.join(dest, 'hostname'), 'w') as f:
            f.write('host file\n')

        def inspect(mp):
            rows = self.ops.copy_out(mp, '/etc', dest)
            self.assertRaises(self.ops.InspectError, self.ops.copy_out, mp,
                              '/etc/hostname', dest)
            return rows

        rows, _ = self.session().run(inspect)
        with open(os.path.join(dest, 'etc', 'hostname')) as f:
            self.assertEqual('guest1\n', f.read())
        with open(os.path.join(dest, 'hostname')) as f:
            self.assertEqual('host file\n', f.read())
        self.assertEqual('/etc/hostname',
                         os.readlink(os.path.join(dest, 'etc',
                                                  'hostname-link')))
        self.assertIn(('/etc', os.path.join(dest, 'etc'), 'directory', 0),
                      rows)
        self.assertNothingLeft()

    def test_copy_out_copies_data_only(self):
        # A guest's 4755 file must not become a setuid binary on the node,
        # nor its xattrs, device nodes or loose modes come along.
        self.useFixture(fixtures.EnvironmentVariable('SUDO_UID', '65534'))
        self.useFixture(fixtures.EnvironmentVariable('SUDO_GID', '65534'))
        dest = os.path.join(self.root, 'out')
        rows, _ = self.session().run(
            lambda mp: self.ops.copy_out(mp, '/hostile', dest))

        def st(name):
            return os.lstat(os.path.join(dest, name))
        self.assertEqual(0o755, stat.S_IMODE(st('suid').st_mode))
        self.assertEqual(0o644, stat.S_IMODE(st('open').st_mode))
        self.assertEqual(0o755, stat.S_IMODE(os.lstat(dest).st_mode))
        self.assertEqual([], os.listxattr(os.path.join(dest, 'suid')))
        for name in ('suid', 'open', 'app.log'):
            self.assertEqual((65534, 65534), (st(name).st_uid,
                                              st(name).st_gid), name)
        self.assertEqual((65534, 65534), (os.lstat(dest).st_uid,
                                          os.lstat(dest).st_gid))
        self.assertFalse(os.path.lexists(os.path.join(dest, 'null')))
        self.assertIn(('/hostile/null', '', 'skipped (special file)', 0),
                      rows)
        with open(os.path.join(dest, 'suid')) as f:
            self.assertEqual('#!/bin/sh\necho root\n', f.read())
        self.assertNothingLeft()

    def test_read_write_persists(self):
        rc, steps = self.session(read_write=True).run(
            lambda mp: self.ops.exec_command(mp, 'echo fixed > fixed.txt'))
        self.assertEqual(0, rc)
        self.assertIn('READ-WRITE', steps[1].detail)
        self.assertIn('-o rw,', steps[2].detail)
        out = io.BytesIO()
        rows, _ = self.session().run(lambda mp: (
            self.ops.cat_path(mp, 'fixed.txt', out),
            self.ops.list_path(mp, 'fixed.txt'))[1])
        self.assertEqual(b'fixed\n', out.getvalue())
        # The command is the guest's root (uid 0 through the id-mapped
        # mount), not the host's unprivileged uid it runs as.
        self.assertEqual((0, 0), rows[0][4:6])
        self.assertNothingLeft()
        self.assertEqual(['read-write', 'read-write', 'read-only',
                          'read-only'],
                         [r['mode'] for r in self.audit_records()])

    def test_exec_runs_in_the_mount_point(self):
        rc, _ = self.session().run(lambda mp: self.ops.exec_command(
            mp, 'test "$(cat etc/hostname)" = guest1 && test "$1" = "$PWD" '
            '&& test "$PWD" = "$INSPECT_MOUNTPOINT"'))
        self.assertEqual(0, rc)
        self.assertNothingLeft()

    def test_exec_is_confined_to_the_guest(self):
        # The guest's absolute link hostile/victim names a host file: it
        # must resolve in the confinement, where it does not exist, for
        # reading and (--read-write) for writing.
        victim = '/run/osc-nodeops-inspect-test-victim'
        with open(victim, 'w') as f:
            f.write('host secret\n')
        self.addCleanup(os.unlink, victim)
        rc, _ = self.session(read_write=True).run(
            lambda mp: self.ops.exec_command(
                mp, 'cat hostile/victim > got.txt 2>&1; '
                'echo pwned > hostile/victim; ls /etc /proc /home '
                '> ls.txt 2>&1; exit 0'))
        self.assertEqual(0, rc)
        with open(victim) as f:
            self.assertEqual('host secret\n', f.read())
        out = io.BytesIO()
        self.session().run(lambda mp: (
            self.ops.cat_path(mp, 'got.txt', out),
            self.ops.cat_path(mp, 'ls.txt', out)))
        self.assertNotIn(b'host secret', out.getvalue())
        self.assertIn(b'No such file or directory', out.getvalue())
        self.assertNotIn(b'shadow', out.getvalue())
        self.assertNothingLeft()

    def captured(self, func, *args):
        """``func(*args)`` with our file descriptors 1 and 2 (which a
        confined command inherits) sent to a file: (its result, the text)."""
        sys.stdout.flush()
        sys.stderr.flush()
        with tempfile.TemporaryFile() as out:
            saved = [os.dup(1), os.dup(2)]
            os.dup2(out.fileno(), 1)
            os.dup2(out.fileno(), 2)
            try:
                result = func(*args)
            finally:
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
                for fd in saved:
                    os.close(fd)
            out.seek(0)
            return result, out.read().decode(errors='replace')

    def run_guest_hook(self):
        """The operator runs ``git status`` in the guest's /etc, read-only,
        with credentials in the environment and a listener on the host's
        127.0.0.1: the guest's fsmonitor hook reports (see PROBE)."""
        for name, value in SECRETS.items():
            self.useFixture(fixtures.EnvironmentVariable(name, value))
        listener = socket.socket()
        self.addCleanup(listener.close)
        listener.bind(('127.0.0.1', 0))
        listener.listen(8)
        self.marker = os.path.join(self.root, 'escaped')
        command = 'cd etc && PROBE_PORT=%d PROBE_MARKER=%s git status' % (
            listener.getsockname()[1], self.marker)
        (rc, text), _ = self.session().run(
            lambda mp: self.captured(self.ops.exec_command, mp, command))
        self.assertNothingLeft()
        reports = [json.loads(line.split(' ', 1)[1])
                   for line in text.splitlines()
                   if line.startswith('PROBE ')]
        # The hook did run (else the tests below would prove nothing).
        self.assertEqual(1, len(reports), text)
        self.assertEqual(0, rc, text)
        return reports[0]

    def test_guest_hook_cannot_escape_to_the_host(self):
        report = self.run_guest_hook()
        self.assertFalse(os.path.lexists(self.marker),
                         'the guest wrote %s on the host' % self.marker)
        self.assertNotIn('wrote', report['escape'])

    def test_guest_hook_sees_no_credential(self):
        env = self.run_guest_hook()['env']
        leaked = sorted(k for k in env
                        if k.startswith('OS_') or k == 'SSH_AUTH_SOCK')
        self.assertEqual([], leaked, env)
        for value in SECRETS.values():
            self.assertNotIn(value, json.dumps(env))

    def test_guest_hook_has_no_network(self):
        report = self.run_guest_hook()
        self.assertNotEqual('connected', report['connect'])
        self.assertEqual(['lo'], report['interfaces'])

    def test_confined_command_has_no_host_privilege(self):
        # Seen from the host while it runs: an unprivileged uid and gid
        # (the user namespace's), no capability at all, no new privileges,
        # and namespaces of its own (the network's has only lo, down).
        from osc_nodeops.privileged import confine
        seen = {}

        def watch():
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not seen:
                for pid in filter(str.isdigit, os.listdir('/proc')):
                    try:
                        with open('/proc/%s/cmdline' % pid, 'rb') as f:
                            if f.read() != b'sleep\x0031.5\x00':
                                continue
                        with open('/proc/%s/status' % pid) as f:
                            seen.update(line.split(':\t', 1)
                                        for line in f.read().splitlines())
                        seen['ns'] = {n: os.readlink('/proc/%s/ns/%s'
                                                     % (pid, n))
                                      for n in NAMESPACES}
                        os.kill(int(pid), signal.SIGKILL)
                    except OSError:
                        continue
                time.sleep(0.05)

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            rc, _ = self.session(read_write=True).run(
                lambda mp: self.ops.exec_command(mp, 'exec sleep 31.5'))
        finally:
            watcher.join()
        self.assertEqual(128 + signal.SIGKILL, rc)
        self.assertNothingLeft()
        ids = '%d\t%d\t%d\t%d' % ((confine.ID_BASE,) * 4)
        self.assertEqual(ids, seen['Uid'])
        self.assertEqual(ids, seen['Gid'])
        self.assertEqual('', seen['Groups'].strip())
        for caps in ('CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb'):
            self.assertEqual(0, int(seen[caps], 16), caps)
        self.assertEqual('1', seen['NoNewPrivs'])
        for name in NAMESPACES:
            self.assertNotEqual(os.readlink('/proc/self/ns/%s' % name),
                                seen['ns'][name], name)

    def test_exception_in_inspect_tears_down(self):
        def inspect(mp):
            raise RuntimeError('inspect blew up')

        err = self.assertRaises(RuntimeError, self.session().run, inspect)
        self.assertEqual('inspect blew up', str(err))
        import libvirt
        self.assertEqual(libvirt.VIR_DOMAIN_RUNNING, self.state())
        self.assertNothingLeft()
        self.assertIn('resume: done (domain instance-0000274a running)',
                      self.events)
        self.assertIn('failed', self.audit_records()[-1]['outcome'])

    def test_state_dir_through_a_symlink(self):
        real = os.path.join(self.root, 'real-state')
        os.makedirs(real)
        os.symlink(real, os.path.join(self.root, 'state-link'))
        s = self.session(state_dir=os.path.join(self.root, 'state-link'))
        s.preflight()
        s._setup()
        s.journal.release()
        # A crash: cleanup must find the mount and loop device by the
        # names the kernel reports (real paths).
        rows = self.ops.cleanup(os.path.join(self.root, 'state-link'),
                                open_libvirt=lambda uri: self.conn)
        self.assertEqual([('unmount', 'done'), ('disconnect', 'done'),
                          ('resume', 'done')],
                         [(r.step, r.result) for r in rows])
        self.assertEqual([], helpers.leftovers(self.root))
        self.assertEqual([], [n for n in os.listdir(real)
                              if n.endswith('.json')])

    def test_crash_then_cleanup_resumes(self):
        # Run the three first steps, then "die": the lock is dropped, the
        # journal and everything it names stay in place.
        s = self.session()
        s.preflight()
        s._setup()
        import libvirt
        self.assertEqual(libvirt.VIR_DOMAIN_PAUSED, self.state())
        left = helpers.leftovers(self.root)
        self.assertTrue(any(x.startswith('mount ') for x in left), left)
        s.journal.release()
        rows = self.ops.cleanup(self.state_dir,
                                open_libvirt=lambda uri: self.conn,
                                audit_log=self.audit_log)
        self.assertEqual([('unmount', 'done'), ('disconnect', 'done'),
                          ('resume', 'done')],
                         [(r.step, r.result) for r in rows])
        self.assertEqual(libvirt.VIR_DOMAIN_RUNNING, self.state())
        self.assertNothingLeft()
        self.assertEqual('cleanup', self.audit_records()[-1]['event'])

    def test_later_run_cleans_up_first(self):
        s = self.session()
        s.preflight()
        s._setup()
        s.journal.release()
        rows, _ = self.session().run(lambda mp: self.ops.list_path(mp, '/'))
        self.assertIn('hello.txt', [r[0] for r in rows])
        self.assertTrue(any(e.startswith('cleanup of an earlier session')
                            for e in self.events))
        import libvirt
        self.assertEqual(libvirt.VIR_DOMAIN_RUNNING, self.state())
        self.assertNothingLeft()

    def _refused(self, message, **kw):
        import libvirt
        from osc_nodeops import errors
        err = self.assertRaises(errors.NodeOpsError,
                                self.session(**kw).run,
                                lambda mp: self.fail('inspect ran'))
        self.assertIn(message, str(err))
        self.assertNotIn('\n', str(err))
        self.assertEqual(libvirt.VIR_DOMAIN_RUNNING, self.state())
        self.assertNothingLeft()
        self.assertEqual([], self.audit_records())

    def test_disk_outside_the_instances_directory(self):
        self._refused('outside the instances directory', disk='disk.eph0')

    def test_disk_missing(self):
        os.unlink(self.disk_local)
        self._refused('disk disk.local is missing', disk='disk.local')

    def test_unknown_disk(self):
        self._refused("the domain has no disk 'disk.swap'", disk='disk.swap')

    def test_missing_approval(self):
        self._refused('--approved-by WHO and --reason TEXT are required',
                      approved_by='  ')

    def test_no_such_partition(self):
        import libvirt
        err = self.assertRaises(self.ops.InspectError,
                                self.session(partition=7).run,
                                lambda mp: self.fail('inspect ran'))
        self.assertIn('no partition 7', str(err))
        # Refused after the suspend: teardown resumed it.
        self.assertEqual(libvirt.VIR_DOMAIN_RUNNING, self.state())
        self.assertNothingLeft()

    def test_nbd_connector(self):
        if not self.ops.nbd_module_loaded():
            self._refused('the nbd kernel module is not loaded',
                          connector='nbd')
            return
        rows, steps = self.session(connector='nbd').run(
            lambda mp: self.ops.list_path(mp, '/'))
        self.assertIn('hello.txt', [r[0] for r in rows])
        self.assertNothingLeft()


class InspectDiskCLITest(_Rig, base.FunctionalTestCase):

    HOST = 'c02'

    def setUp(self):
        super().setUp()
        why = helpers.missing_requirements()
        if why:
            print('skipping inspect-disk CLI tests: %s' % why,
                  file=sys.stderr)
            self.skipTest(why)
        self.server = self.create_server(host=self.HOST)
        self.make_rig(self.server.id, self.server.instance_name,
                      outside_disk=True)

    def argv(self, *args, host=HOST, approve=True):
        argv = ['instance', 'inspect-disk', self.server.id,
                '--libvirt-uri', self.uri, '--instances-path',
                self.instances, '--state-dir', self.state_dir,
                '--audit-log', self.audit_log]
        if host:
            argv += ['--host', host]
        if approve:
            argv += ['--approved-by', 'alice', '--reason', 'ticket 42']
        return argv + list(args)

    def env(self, **extra):
        env = dict(os.environ, OS_CLIENT_CONFIG_FILE=base.CLOUDS_YAML)
        for key in list(env):
            if key.startswith('OS_') and key != 'OS_CLIENT_CONFIG_FILE':
                del env[key]
        env.update(extra)
        return env

    def exe(self):
        return [os.path.join(os.path.dirname(sys.executable), 'openstack'),
                '--os-cloud', 'minicloud']

    def run_cli(self, argv, fault=None, prefix=(), sigint_ignored=False):
        """``openstack ARGV``; with ``fault`` (``WHEN:STEP[:SIGNAL]``)
        through ``inspect_fault_cli``, which installs a step hook that
        signals the process there."""
        exe = self.exe()
        env = self.env()
        if fault:
            repo = os.path.dirname(os.path.dirname(os.path.dirname(
                os.path.abspath(__file__))))
            env['PYTHONPATH'] = repo
            exe = [sys.executable, '-m', 'tests.functional.inspect_fault_cli',
                   fault] + exe[1:]
        return subprocess.run(
            list(prefix) + exe + argv, capture_output=True, text=True,
            env=env, timeout=300, preexec_fn=(
                (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
                if sigint_ignored else None))

    def start_cli(self, argv):
        return subprocess.Popen(self.exe() + argv, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True,
                                env=self.env(), start_new_session=True)

    def assertResumed(self, stderr):
        # The domain's own connection resumed it (a new process would see
        # the test driver's fresh copy running anyway).
        self.assertIn('resume: done (domain %s running)'
                      % self.server.instance_name, stderr)

    def test_list_json(self):
        res = self.run_cli(self.argv('--list', '/', '-f', 'json'))
        self.assertEqual(0, res.returncode, res.stderr)
        rows = json.loads(res.stdout)
        self.assertIn({'Name': 'hello.txt', 'Type': 'file', 'Size': 21},
                      [{k: r[k] for k in ('Name', 'Type', 'Size')}
                       for r in rows])
        self.assertIn('suspend: done', res.stderr)
        self.assertResumed(res.stderr)
        self.assertNothingLeft()
        recs = self.audit_records()
        self.assertEqual(['started', 'finished'], [r['event'] for r in recs])
        self.assertEqual(self.server.instance_name, recs[0]['instance_name'])
        self.assertEqual(self.HOST, recs[0]['host'])

    def test_host_and_instances_path_from_nova_conf_cat(self):
        conf = os.path.join(self.root, 'nova.conf')
        with open(conf, 'w') as f:
            f.write('[DEFAULT]\nhost = %s\ninstances_path = %s\n'
                    % (self.HOST, self.instances))
        argv = [a for a in self.argv('--cat', '/etc/hostname', host=None)]
        i = argv.index('--instances-path')
        del argv[i:i + 2]
        res = self.run_cli(argv + ['--nova-conf', conf])
        self.assertEqual(0, res.returncode, res.stderr)
        self.assertEqual('guest1\n', res.stdout)
        self.assertNothingLeft()

    def test_disk_local_copy_out(self):
        dest = os.path.join(self.root, 'copied')
        res = self.run_cli(self.argv('--disk', 'disk.local', '--copy-out',
                                     '/data.txt', dest, '-f', 'json'))
        self.assertEqual(0, res.returncode, res.stderr)
        with open(dest) as f:
            self.assertEqual('ephemeral data\n', f.read())
        self.assertNothingLeft()

    def test_exception_in_inspect(self):
        res = self.run_cli(self.argv('--cat', '/no/such/file'))
        self.assertEqual(1, res.returncode)
        self.assertIn('/no/such/file: not a regular file in the guest',
                      res.stderr)
        self.assertEqual('', res.stdout)
        self.assertResumed(res.stderr)
        self.assertNothingLeft()

    def test_exec_exit_status(self):
        res = self.run_cli(self.argv('--exec', 'test -f hello.txt && exit 3'))
        self.assertEqual(1, res.returncode, res.stderr)
        self.assertIn('exec exited 3', res.stderr)
        self.assertNothingLeft()

    def test_exec_leaving_a_background_process_still_tears_down(self):
        # `cmd &` keeps its cwd in the mount point after sh has exited: it
        # must not keep the disk mounted or the domain paused.
        res = self.run_cli(self.argv('--exec', 'sleep 300 & exit 0'))
        self.assertEqual(0, res.returncode, res.stderr)
        self.assertIn('unmount: done', res.stderr)
        self.assertResumed(res.stderr)
        self.assertNothingLeft()

    def test_shell_reads_commands_then_tears_down(self):
        env = self.env(SHELL='/bin/sh')
        res = subprocess.run(
            self.exe() + self.argv('--shell'), input='cat hello.txt\n'
            'pwd\nexit 0\n', capture_output=True, text=True, env=env,
            timeout=300)
        self.assertEqual(0, res.returncode, res.stderr)
        self.assertEqual('hello from the guest\n%s\n' % os.path.join(
            os.path.realpath(self.state_dir), self.server.id, 'mnt'),
            res.stdout)
        self.assertResumed(res.stderr)
        self.assertNothingLeft()

    def wait_exec_started(self, child, timeout=60):
        # The fuse mount of the connector appears before the filesystem
        # mount, and both before --exec starts: wait for the command itself
        # (confined, it can write only to its stdout, the CLI's).
        import select
        ready, _, _ = select.select([child.stdout], [], [], timeout)
        if not ready:
            self.fail('--exec did not start within %d s' % timeout)
        line = child.stdout.readline()
        if line != 'started\n':
            self.fail('exited early: %r %s' % (line, child.communicate(),))

    def wait_for_group_process(self, pgid, cmdline, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for pid in filter(str.isdigit, os.listdir('/proc')):
                try:
                    with open('/proc/%s/stat' % pid) as f:
                        line = f.read()
                    with open('/proc/%s/cmdline' % pid, 'rb') as f:
                        argv = f.read()
                except OSError:
                    continue
                # the fields after the command name: state ppid pgrp ...
                fields = line.rsplit(')', 1)[1].split()
                if int(fields[2]) == pgid and argv == cmdline:
                    return
            time.sleep(0.05)
        self.fail('no %r in process group %d' % (cmdline, pgid))

    def test_ctrl_c_during_exec(self):
        # Ctrl-C at a terminal signals the whole foreground process group.
        child = self.start_cli(self.argv(
            '--exec', 'echo started && sleep 60'))
        self.wait_exec_started(child)
        # Ctrl-C while the command runs: after 'started' the shell has
        # still to start the sleep; a SIGINT before that, the shell defers
        # (it waits for the sleep, which never saw it: 60 s).
        self.wait_for_group_process(child.pid, b'sleep\x0060\x00')
        os.killpg(child.pid, signal.SIGINT)
        out, err = child.communicate(timeout=60)
        self.assertEqual(1, child.returncode, err)
        self.assertIn('exec exited', err)
        self.assertResumed(err)
        self.assertNothingLeft()

    def test_sigint_during_setup(self):
        res = self.run_cli(self.argv('--list', '/'), fault='after:mount:INT')
        self.assertNotEqual(0, res.returncode)
        self.assertResumed(res.stderr)
        self.assertNothingLeft()
        self.assertIn('interrupted',
                      self.audit_records()[-1]['outcome'])

    def test_sigint_during_setup_with_sigint_ignored_at_start(self):
        # A shell script's `cmd &` (and so a CI run in the background)
        # starts cmd with SIGINT ignored, and Python then installs no
        # KeyboardInterrupt handler: the SIGINT was lost and the command
        # exited 0 (the flaky clean-clone run).  A session catches it.
        res = self.run_cli(self.argv('--list', '/'), fault='after:mount:INT',
                           sigint_ignored=True)
        self.assertEqual(130, res.returncode, res.stderr)
        self.assertEqual('', res.stdout)
        self.assertResumed(res.stderr)
        self.assertNothingLeft()
        self.assertEqual('interrupted (SIGINT)',
                         self.audit_records()[-1]['outcome'])

    def test_sigterm_during_exec(self):
        child = self.start_cli(self.argv(
            '--exec', 'echo started && sleep 60'))
        self.wait_exec_started(child)
        os.kill(child.pid, signal.SIGTERM)
        out, err = child.communicate(timeout=60)
        self.assertEqual(1, child.returncode, err)
        self.assertIn('interrupted by SIGTERM', err)
        self.assertResumed(err)
        self.assertNothingLeft()

    def test_sigkill_at_each_step_then_cleanup(self):
        from osc_nodeops.ops import inspect_disk as ops
        # What the killed run must have left, per kill point.
        expect_left = {
            'after:connect': ('nbdfuse', 'qemu-nbd'),
            'before:mount': ('loop',),
            'after:mount': ('mount', 'loop', 'nbdfuse', 'qemu-nbd'),
            'before:unmount': ('mount', 'loop', 'nbdfuse', 'qemu-nbd'),
            'after:unmount': ('loop', 'nbdfuse', 'qemu-nbd'),
        }
        done = []
        for step in ops.STEPS:
            for when in ('before', 'after'):
                point = '%s:%s' % (when, step)
                res = self.run_cli(self.argv('--list', '/'), fault=point)
                self.assertEqual(-signal.SIGKILL, res.returncode,
                                 '%s: %s' % (point, res.stderr))
                self.assertTrue(os.path.exists(self.journal_path), point)
                with open(self.journal_path) as f:
                    journal = json.load(f)
                self.assertEqual(self.server.id, journal['server_id'])
                self.assertEqual('running',
                                 journal['suspend']['prior_state'])
                left = ' '.join(helpers.leftovers(self.root))
                for kind in expect_left.get(point, ()):
                    self.assertIn(kind, left, point)
                # --cleanup needs no API (and no credentials).
                clean = subprocess.run(
                    [self.exe()[0], 'instance', 'inspect-disk', '--cleanup',
                     '--state-dir', self.state_dir, '--audit-log',
                     self.audit_log, '-f', 'json'],
                    capture_output=True, text=True, timeout=120,
                    env={'PATH': os.environ['PATH']})
                self.assertEqual(0, clean.returncode,
                                 '%s: %s' % (point, clean.stderr))
                rows = json.loads(clean.stdout)
                self.assertTrue(all(r['Result'] != 'failed' for r in rows),
                                rows)
                steps = {r['Step']: r for r in rows}
                if 'mount' in expect_left.get(point, ()):
                    self.assertEqual('done', steps['unmount']['Result'])
                if 'qemu-nbd' in expect_left.get(point, ()):
                    self.assertEqual('done', steps['disconnect']['Result'])
                # The test driver: the clean-up's own connection sees the
                # domain running, so "resume" is either done or not
                # needed; it must have been looked at.
                if point != 'before:suspend':
                    self.assertIn(steps['resume']['Result'],
                                  ('done', 'not needed'), point)
                self.assertNothingLeft()
                done.append(point)
        self.assertEqual(12, len(done))

    def test_cleanup_with_nothing_to_do(self):
        res = subprocess.run(
            [self.exe()[0], 'instance', 'inspect-disk', '--cleanup',
             '--state-dir', self.state_dir, '-f', 'json'],
            capture_output=True, text=True, timeout=120,
            env={'PATH': os.environ['PATH']})
        self.assertEqual(0, res.returncode, res.stderr)
        self.assertEqual([], json.loads(res.stdout))
        self.assertIn('nothing to clean up', res.stderr)

    # -- bad input: one line, non-zero, nothing changed --------------------

    def assertRefused(self, res, message):
        self.assertNotEqual(0, res.returncode)
        self.assertIn(message, res.stderr)
        self.assertEqual(1, len(res.stderr.strip().splitlines()),
                         res.stderr)
        self.assertNotIn('suspend:', res.stderr)
        self.assertNothingLeft()
        self.assertEqual([], self.audit_records())

    def test_not_on_this_node(self):
        res = self.run_cli(self.argv('--list', '/', host='c03'))
        self.assertRefused(res, 'is on host %s, not on this node (c03)'
                           % self.HOST)

    def test_missing_approval(self):
        res = self.run_cli(self.argv('--list', '/', approve=False))
        self.assertRefused(res, '--approved-by WHO and --reason TEXT are '
                                'required')

    def test_not_root(self):
        res = self.run_cli(self.argv('--list', '/'),
                           prefix=('setpriv', '--reuid=65534',
                                   '--regid=65534', '--clear-groups'))
        self.assertRefused(res, 'must run as root')

    def test_disk_escapes_instances_directory(self):
        res = self.run_cli(self.argv('--disk', 'disk.eph0', '--list', '/'))
        self.assertRefused(res, 'outside the instances directory')

    def test_disk_missing(self):
        os.unlink(self.disk_local)
        res = self.run_cli(self.argv('--disk', 'disk.local', '--list', '/'))
        self.assertRefused(res, 'disk disk.local is missing')

    def test_no_nbd_device(self):
        from osc_nodeops.ops import inspect_disk as ops
        if ops.nbd_module_loaded():
            self.skipTest('the nbd module is loaded here; the no-free-'
                          'device path is covered by the unit tests')
        res = self.run_cli(self.argv('--connector', 'nbd', '--list', '/'))
        self.assertRefused(res, 'the nbd kernel module is not loaded')

    def test_no_such_server(self):
        res = self.run_cli(['instance', 'inspect-disk', 'no-such-server-x',
                            '--approved-by', 'a', '--reason', 'b',
                            '--state-dir', self.state_dir, '--audit-log',
                            self.audit_log, '--list', '/'])
        self.assertRefused(res, "no server 'no-such-server-x'")
