"""``openstack compute node maintain`` on the minicloud's three hosts: a
wave that does not fit the hosts still in service, the tty status block.
Waves, the operator's step, a failing step and SIGKILL/resume across many
hosts are in ``test_maintain_many`` (the rig grown to six computes)."""

import json
import os
import pty
import select
import subprocess
import sys
import threading
import time

from tests.functional import base


class MaintainHelpers(object):
    """What the maintain test classes (here and in test_maintain_many)
    share: a host's service, a server's host, the events file read line by
    line, the command."""

    def _status(self, host):
        [svc] = list(self.admin_conn.compute.services(
            host=host, binary='nova-compute'))
        return svc

    def _host_of(self, server_id):
        return self.admin_conn.compute.get_server(server_id).compute_host

    def _events(self, path):
        with open(path) as f:
            lines = [json.loads(line) for line in f]  # one object a line
        for rec in lines:
            for key in ('time', 'host', 'server', 'step', 'state',
                        'message'):
                self.assertIn(key, rec)
        return lines

    def _campaigns(self):
        return [a for a in self.admin_conn.compute.aggregates()
                if a.name.startswith('nodeops-maintain-')]

    def _forget_campaigns(self):
        """maintain keeps a campaign's progress in an aggregate of its own
        (deleted when the campaign is done): none from an earlier test
        before, none left after."""
        def forget():
            for agg in self._campaigns():
                self.admin_conn.compute.delete_aggregate(agg)
        forget()
        self.addCleanup(forget)

    def _maintain(self, *args, check=False, timeout=900):
        return self.openstack('compute', 'node', 'maintain', *args,
                              check=check, timeout=timeout)


class TestMaintain(MaintainHelpers, base.FunctionalTestCase):

    def setUp(self):
        super(TestMaintain, self).setUp()
        self.tmp = self.useFixture(__import__('fixtures').TempDir()).path
        self.hosts = list(self.state['compute_hosts'])
        for host in self.hosts:
            self.addCleanup(self.enable_computes, host)
        self._forget_campaigns()

    def test_wave_that_does_not_fit_is_refused_untouched(self):
        # Each wave's servers must fit the hosts still in service: c03 is
        # disabled by someone else, so only c02 could take c01's server,
        # and its disk is mostly taken.  Without the per-wave check c03
        # would have looked free.
        first, second, third = self.hosts[:3]
        size = self.state['settings']['host_size'][2]
        flavor = self.admin_conn.compute.create_flavor(
            name='nodeops-big-%s' % os.getpid(), vcpus=1, ram=64,
            disk=size * 2 // 3)
        self.addCleanup(self.admin_conn.compute.delete_flavor, flavor.id)
        servers = {}
        for h in (first, second):
            srv = self.admin_conn.compute.create_server(
                name='big-%s' % h, flavor_id=flavor.id,
                image_id=self.state['image']['id'], networks='none',
                availability_zone='nova:%s' % h)
            self.addCleanup(self._delete_server, srv.id)
            servers[h] = srv.id
        for sid in servers.values():
            self.wait_for_server(sid, 'ACTIVE')
        self.admin_conn.compute.disable_service(
            self._status(third), host=third, binary='nova-compute',
            disabled_reason='broken fan')
        marker = os.path.join(self.tmp, 'exec-ran')
        events = os.path.join(self.tmp, 'refused.jsonl')
        res = self._maintain(first, '--max-hosts', 2, '--exec',
                             'touch %s' % marker, '--events', events,
                             '-f', 'json')
        self.assertEqual(1, res.returncode, res.stderr)
        [row] = json.loads(res.stdout)
        self.assertEqual('failed', row['Result'])
        self.assertEqual('refused', row['Drained'])
        self.assertIn('would not fit', row['Message'])
        svc = self._status(first)
        self.assertEqual('enabled', svc.status)
        self.assertFalse(svc.disabled_reason)
        self.assertEqual(first, self._host_of(servers[first]))
        self.assertFalse(os.path.exists(marker))
        self.assertEqual([], list(self.admin_conn.compute.migrations(
            instance_uuid=servers[first])))
        recs = self._events(events)
        self.assertIn((first, 'drain', 'failed'),
                      {(r['host'], r['step'], r['state']) for r in recs})

    def test_step_environment_and_reason(self):
        # Issue 21 item 4: credentials given as OS_* (an openrc) reached
        # the step, and a failing step's output was published in nova's
        # disabled reason.  Now the step sees no OS_*, the row has its
        # output, the reason only the step, its exit status and the time.
        import yaml
        with open(base.CLOUDS_YAML) as f:
            auth = yaml.safe_load(f)['clouds']['minicloud']['auth']
        env = {k: v for k, v in os.environ.items()
               if not k.startswith('OS_')}
        env.update({'OS_%s' % k.upper(): str(v) for k, v in auth.items()})
        env.update(OS_IDENTITY_API_VERSION='3', OS_REGION_NAME='RegionOne',
                   NODEOPS_FORWARDED='yes')
        host = self.hosts[-1]
        exe = os.path.join(os.path.dirname(sys.executable), 'openstack')
        res = subprocess.run(
            [exe, 'compute', 'node', 'maintain', host, '--exec',
             'echo "pw=[$OS_PASSWORD] url=[$OS_AUTH_URL] '
             'fw=[$NODEOPS_FORWARDED]"; exit 3', '--exec-env',
             'NODEOPS_FORWARDED', '-f', 'json'],
            env=env, capture_output=True, text=True, timeout=600)
        self.assertEqual(1, res.returncode, res.stderr)
        [row] = json.loads(res.stdout)
        self.assertEqual('failed', row['Result'])
        self.assertIn('exec failed: exit 3', row['Message'])
        self.assertIn('pw=[] url=[] fw=[yes]', row['Message'])
        self.assertNotIn(auth['password'], res.stdout + res.stderr)
        self.assertIn('pw=[]', res.stderr)  # the output on stderr too
        svc = self._status(host)
        self.assertEqual('disabled', svc.status)
        self.assertIn('exec failed', svc.disabled_reason)
        self.assertIn('exit 3', svc.disabled_reason)
        self.assertNotIn('pw=', svc.disabled_reason)

    def test_host_with_a_server_it_would_skip_is_refused_untouched(self):
        # Issue 20 item 5: a SUSPENDED server would stay behind: the host
        # was drained of the rest, left disabled and the step never ran.
        host = self.hosts[-1]
        stays = self.create_server(host=host)
        moves = self.create_server(host=host)
        self.admin_conn.compute.suspend_server(stays.id)
        self.wait_for_server(stays.id, 'SUSPENDED')
        marker = os.path.join(self.tmp, 'exec-ran')
        res = self._maintain(host, '--exec', 'touch %s' % marker,
                             '-f', 'json')
        self.assertEqual(1, res.returncode, res.stderr)
        [row] = json.loads(res.stdout)
        self.assertEqual('refused', row['Drained'])
        self.assertIn(stays.id, row['Message'])
        self.assertIn('--move-suspended', row['Message'])
        self.assertIn('--allow-skipped', row['Message'])
        svc = self._status(host)
        self.assertEqual('enabled', svc.status)
        self.assertFalse(svc.disabled_reason)
        self.assertEqual(host, self._host_of(moves.id))
        self.assertEqual([], list(self.admin_conn.compute.migrations(
            instance_uuid=moves.id)))
        self.assertFalse(os.path.exists(marker))
        # Allowed: the rest moves, the step runs, the suspended one stays.
        res = self._maintain(host, '--exec', 'touch %s' % marker,
                             '--allow-skipped', '-f', 'json')
        self.assertEqual(0, res.returncode, res.stderr)
        self.assertTrue(os.path.exists(marker))
        self.assertEqual(host, self._host_of(stays.id))
        self.assertNotEqual(host, self._host_of(moves.id))
        self.assertEqual('enabled', self._status(host).status)

    def test_dry_run_then_drain_options(self):
        # Issue 24 item 4.  --dry-run: the waves, each host's drain plan
        # and the step's command line, nothing changed; it exits 1 as the
        # real run would refuse the second wave (a server --exclude keeps
        # there, without --allow-skipped).  Then the real run honours
        # --exclude: that server stays, the other moves.
        first, host = self.hosts[-2:]
        keep = self.create_server(host=host)
        move = self.create_server(host=host)
        marker = os.path.join(self.tmp, 'exec-ran')
        step = 'touch %s-{host}' % marker
        res = self._maintain(first, host, '--order', 'given', '--exec', step,
                             '--exclude', keep.id, '--retries', '0',
                             '--dry-run', '-f', 'json')
        self.assertEqual(1, res.returncode, res.stderr)
        rows = {r['Host']: r for r in json.loads(res.stdout)}
        self.assertEqual((1, 'planned', 'touch %s-%s' % (marker, first)), (
            rows[first]['Wave'], rows[first]['Result'], rows[first]['Exec']))
        row = rows[host]
        self.assertEqual((2, 'would-refuse', 'would move 1 (1 live)'),
                         (row['Wave'], row['Result'], row['Drained']))
        self.assertIn(keep.id, row['Message'])
        self.assertIn('--allow-skipped', row['Message'])
        for h in (first, host):
            svc = self._status(h)
            self.assertEqual(('enabled', None),
                             (svc.status, svc.disabled_reason or None))
        self.assertEqual([], self._campaigns())
        for s in (keep, move):
            self.assertEqual(host, self._host_of(s.id))
            self.assertEqual([], list(self.admin_conn.compute.migrations(
                instance_uuid=s.id)))
        self.assertEqual([], [f for f in os.listdir(self.tmp)
                              if f.startswith('exec-ran')])
        # The real run, the server excluded and allowed to stay.
        res = self._maintain(host, '--exec', step, '--exclude', keep.id,
                             '--allow-skipped', '--retries', '0', '-f',
                             'json')
        self.assertEqual(0, res.returncode, res.stderr)
        self.assertTrue(os.path.exists('%s-%s' % (marker, host)))
        self.assertEqual(host, self._host_of(keep.id))
        self.assertNotEqual(host, self._host_of(move.id))
        self.assertEqual('enabled', self._status(host).status)

    def test_host_disabled_by_someone_else_is_left_alone(self):
        # Issue 20 item 4: a named host another admin disabled ("RMA")
        # was drained, its step run, and ENABLED at the end; with
        # --max-hosts 1 it was not counted.  Now it is refused, its reason
        # kept, and it takes the one place: the other host is not touched.
        first, second = self.hosts[-2:]
        rma = 'RMA: bad DIMM, do not enable'
        self.admin_conn.compute.disable_service(
            self._status(second), host=second, binary='nova-compute',
            disabled_reason=rma)
        marker = os.path.join(self.tmp, 'exec-ran')
        res = self._maintain(first, second, '--max-hosts', 1, '--exec',
                             'echo {host} >> %s' % marker, '-f', 'json')
        self.assertEqual(1, res.returncode, res.stderr)
        rows = {r['Host']: r for r in json.loads(res.stdout)}
        self.assertEqual('failed', rows[second]['Result'])
        self.assertIn('--include-disabled', rows[second]['Message'])
        self.assertIn('out of service already (%s)' % second,
                      rows[first]['Message'])
        self.assertEqual(rma, self._status(second).disabled_reason)
        self.assertEqual('enabled', self._status(first).status)
        self.assertFalse(os.path.exists(marker))

    def test_tty_status_block(self):
        host = self.hosts[0]
        self.create_servers(2, host=host)
        self.minicloud('timing', 'set', 'memory-mbps=8')
        self.addCleanup(self.minicloud, 'timing', 'off')
        events = os.path.join(self.tmp, 'tty.jsonl')
        argv = [os.path.join(os.path.dirname(sys.executable), 'openstack'),
                '--os-cloud', 'minicloud', 'compute', 'node', 'maintain',
                host, '--events', events, '-f', 'json']
        env = dict(os.environ, OS_CLIENT_CONFIG_FILE=base.CLOUDS_YAML,
                   COLUMNS='120', TERM='xterm')
        master, slave = pty.openpty()
        run = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE,
                               stderr=slave, stdin=subprocess.DEVNULL)
        os.close(slave)
        screen = b''
        out = []
        reader = threading.Thread(target=lambda: out.append(
            run.stdout.read()), daemon=True)
        reader.start()
        deadline = time.time() + 600
        while time.time() < deadline:
            ready, _, _ = select.select([master], [], [], 1)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                screen += chunk
            elif run.poll() is not None:
                break
        run.wait(60)
        reader.join(30)
        os.close(master)
        text = screen.decode('utf-8', 'replace')
        self.assertEqual(0, run.returncode, text[-3000:])
        self.assertIn('servers moved', text)
        self.assertIn('in flight', text)
        self.assertIn('elapsed', text)
        self.assertIn('\x1b[', text)  # redrawn in place
        self.assertRegex(text, r'\d+%')  # a live migration's percent
        rows = json.loads(out[0])  # stdout: only the result
        self.assertEqual([host], [r['Host'] for r in rows])
        self.assertTrue(self._events(events))
        self.assertNotIn('servers moved', out[0].decode())
