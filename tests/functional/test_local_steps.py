"""The compute-node-local steps through the real ``openstack`` CLI.

* ``compute node stop-service`` / ``start-service`` (S5): this machine has
  neither systemd nor nova-compute init files, so the refusal is real here
  (the systemd and init-file paths are unit-tested with a mocked
  ``systemctl`` and a temporary root).
* ``compute node copy-instances`` (S24): real files in temporary
  directories, ownership, conflicts, checksums; no cloud needed.
* ``compute node show HOST --local`` (S8, local half): the minicloud's real
  nova-compute process of that host, its real AMQP connections and log.
"""

import json
import os
import re
import subprocess
import sys
import tempfile

import testtools

from tests.functional import base

OPENSTACK = os.path.join(os.path.dirname(sys.executable), 'openstack')


def run(*args):
    """The CLI without any cloud credentials: these commands need none."""
    env = {k: v for k, v in os.environ.items() if not k.startswith('OS_')}
    return subprocess.run([OPENSTACK] + list(args), capture_output=True,
                          text=True, env=env, timeout=120)


class ServiceStepsTest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        if os.path.isdir('/run/systemd/system') or any(
                os.path.exists(p) for p in ('/etc/init.d/nova-compute',
                                            '/etc/init/nova-compute.conf')):
            self.skipTest('this machine can manage nova-compute; the '
                          'refusal cannot be shown here')

    def test_stop_service_refuses_when_it_cannot_tell(self):
        for direction in ('stop', 'start'):
            for extra in ((), ('--dry-run',)):
                res = run('compute', 'node', '%s-service' % direction,
                          *extra)
                self.assertEqual(1, res.returncode, res.stderr)
                self.assertEqual('', res.stdout)
                lines = res.stderr.strip().splitlines()
                self.assertEqual(1, len(lines), res.stderr)
                self.assertIn('cannot tell how nova-compute is managed on '
                              'this node', lines[0])

    def test_bad_service_name(self):
        for name in ('../x', '..', '-h'):
            res = run('compute', 'node', 'stop-service', '--service=' + name,
                      '--dry-run')
            # a usage error (issue 21 item 9): exit 2, judged first
            self.assertEqual(2, res.returncode, name)
            self.assertIn("not a service name: %r" % name, res.stderr)
            self.assertEqual('', res.stdout)


class CopyInstancesTest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        if os.geteuid() != 0:
            print('skipping copy-instances CLI tests: not root',
                  file=sys.stderr)
            self.skipTest('not root (ownership cannot be kept)')
        self.root = tempfile.mkdtemp(prefix='osc-nodeops-copy-')
        self.addCleanup(subprocess.run, ['rm', '-rf', self.root])
        self.src = os.path.join(self.root, 'dead')
        self.dst = os.path.join(self.root, 'live')
        os.makedirs(self.dst)
        self.write(self.src, 'instance-0000002a/disk', b'Q' * 4096, 107)
        self.write(self.src, 'instance-0000002a/disk.info', b'{}', 107)
        self.write(self.src, '_base/0123abcd', b'B' * 100000, 64055)
        self.write(self.src, 'compute_nodes', b'c01', 0)
        self.write(self.dst, '_base/ffff', b'a base the live node has', 0)

    def write(self, root, rel, data, uid):
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'wb') as f:
            f.write(data)
        os.chown(path, uid, uid)
        return path

    def copy(self, *extra):
        res = run('compute', 'node', 'copy-instances', '--from', self.src,
                  '--to', self.dst, '-f', 'json', *extra)
        return res, json.loads(res.stdout) if res.stdout.strip() else None

    def test_dry_run_copy_rerun_conflict(self):
        res, rows = self.copy('--dry-run')
        self.assertEqual(0, res.returncode, res.stderr)
        by = {r['Entry']: r for r in rows}
        self.assertEqual('planned', by['instance-0000002a']['Result'])
        self.assertEqual(2, by['instance-0000002a']['Files'])
        self.assertEqual('skipped', by['compute_nodes']['Result'])
        self.assertEqual(['_base'], os.listdir(self.dst))
        self.assertEqual(['ffff'], os.listdir(os.path.join(self.dst,
                                                           '_base')))

        res, rows = self.copy('--execute')
        self.assertEqual(0, res.returncode, res.stderr)
        by = {r['Entry']: r for r in rows}
        self.assertEqual('copied', by['_base']['Result'])
        self.assertEqual(100000, by['_base']['Bytes'])
        st = os.stat(os.path.join(self.dst, 'instance-0000002a', 'disk'))
        self.assertEqual((107, 107, 4096), (st.st_uid, st.st_gid,
                                            st.st_size))
        self.assertEqual(64055, os.stat(os.path.join(
            self.dst, '_base', '0123abcd')).st_uid)
        self.assertTrue(os.path.exists(os.path.join(self.dst, '_base',
                                                    'ffff')))

        # Rerun: identical files are left alone, nothing copied.
        res, rows = self.copy('--execute')
        self.assertEqual(0, res.returncode, res.stderr)
        self.assertEqual({'already there'}, {
            r['Result'] for r in rows if r['Entry'] != 'compute_nodes'})

        # A different file under the same name: conflict, not replaced.
        self.write(self.src, '_base/ffff', b'something else', 0)
        res, rows = self.copy('--execute')
        self.assertEqual(1, res.returncode, res.stderr)
        by = {r['Entry']: r for r in rows}
        self.assertEqual('conflict', by['_base']['Result'])
        self.assertIn('_base/ffff', by['_base']['Message'])
        with open(os.path.join(self.dst, '_base', 'ffff'), 'rb') as f:
            self.assertEqual(b'a base the live node has', f.read())

    def test_dry_run_is_the_default(self):
        res, rows = self.copy()
        self.assertEqual(0, res.returncode, res.stderr)
        self.assertEqual('planned', {r['Entry']: r for r in rows}[
            'instance-0000002a']['Result'])
        self.assertEqual(['_base'], os.listdir(self.dst))
        self.assertIn('dry run', res.stderr)

    def test_rerun_repairs_directories_a_crash_left_root_0700(self):
        # Killed after mkdir and before the owner and mode were set: the
        # directory is root:0700 and nova (uid 107) would get EACCES.
        os.chmod(os.path.join(self.src, 'instance-0000002a'), 0o755)
        os.chown(os.path.join(self.src, 'instance-0000002a'), 107, 107)
        left = os.path.join(self.dst, 'instance-0000002a')
        os.mkdir(left, 0o700)
        res, rows = self.copy('--execute')
        self.assertEqual(0, res.returncode, res.stderr)
        st = os.lstat(left)
        self.assertEqual((107, 107, 0o755), (st.st_uid, st.st_gid,
                                             st.st_mode & 0o7777))
        self.assertEqual(4096, os.lstat(os.path.join(left, 'disk')).st_size)

    def test_symlinked_destination_is_not_followed(self):
        elsewhere = os.path.join(self.root, 'elsewhere')
        os.makedirs(elsewhere)
        os.symlink(elsewhere, os.path.join(self.dst, 'instance-0000002a'))
        res, rows = self.copy('--execute')
        self.assertEqual(1, res.returncode, res.stderr)
        self.assertEqual('conflict', {r['Entry']: r for r in rows}[
            'instance-0000002a']['Result'])
        self.assertEqual([], os.listdir(elsewhere))

    def test_bad_input(self):
        res = run('compute', 'node', 'copy-instances', '--from', self.src,
                  '--to', os.path.join(self.src, 'instance-0000002a'))
        # usage errors (issue 21 item 9): exit 2, judged first
        self.assertEqual(2, res.returncode, res.stderr)
        self.assertIn('must be separate directory trees', res.stderr)
        res = run('compute', 'node', 'copy-instances', '--from',
                  os.path.join(self.root, 'nope'), '--to', self.dst)
        self.assertEqual(2, res.returncode, res.stderr)
        self.assertIn('is not a directory', res.stderr)
        self.assertEqual(['_base'], os.listdir(self.dst))

    def test_help_says_unsupported(self):
        res = run('help', 'compute', 'node', 'copy-instances')
        self.assertEqual(0, res.returncode, res.stderr)
        self.assertIn('NOT SUPPORTED BY NOVA', ' '.join(res.stdout.split()))


class ShowLocalTest(base.FunctionalTestCase):

    def test_show_local_on_the_rig(self):
        host = self.state['compute_hosts'][0]
        log = os.path.join(self.state['logs_dir'], 'nova-compute-%s.log'
                           % host)
        info = self.openstack('compute', 'node', 'show', host, '--local',
                              '--compute-log', log, parse_json=True)
        # One pid on a real node; this machine may run another rig (the
        # PID namespace is shared), whose compute of the same name is
        # listed too: every process of that name is reported, ours among
        # them.
        found = re.match(r'^nova-compute running \(pid (\d+(?:, \d+)*)\)$',
                         info['Local Process'])
        self.assertIsNotNone(found, info['Local Process'])
        with open(os.path.join(self.state['state_dir'], 'pids',
                               'nova-compute-%s.pid' % host)) as f:
            ours = f.read().split()[0]
        self.assertIn(ours, found.group(1).split(', '))
        self.assertIsNotNone(info['Local Process Since'])
        self.assertRegex(info['Local AMQP Connections'],
                         r'^\d+ established \(127\.0\.0\.1:5672\)$')
        self.assertTrue(info['Local OK'])
        self.assertEqual(log, info['Local Log'])
        # The API half is still there.
        self.assertIn('State', info)

        info = self.openstack('compute', 'node', 'show', host, '--local',
                              '--compute-log', log + '.missing',
                              parse_json=True)
        self.assertIn('cannot read', info['Local AMQP'])
