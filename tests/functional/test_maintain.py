"""``openstack compute node maintain`` on the minicloud: waves, the
disruption budget sampled from the service list, the operator's step
(``minicloud restart-compute {host}``, a reboot of the fake hypervisor), a
failing step, SIGKILL and resume, the events file, the tty status block."""

import json
import os
import pty
import select
import signal
import subprocess
import sys
import threading
import time

from tests.functional import base

RESTART = '%s restart-compute {host}' % base.MINICLOUD


class _Sampler(object):
    """Samples ``compute service list`` during a run: the most hosts of
    ``hosts`` ever disabled at once."""

    def __init__(self, conn, hosts):
        self.conn = conn
        self.hosts = set(hosts)
        self.most = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                down = [s.host for s in self.conn.compute.services(
                    binary='nova-compute') if s.host in self.hosts
                    and s.status == 'disabled']
                self.most = max(self.most, len(down))
                self.samples += 1
            except Exception:
                pass
            self._stop.wait(0.5)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(10)


class TestMaintain(base.FunctionalTestCase):

    def setUp(self):
        super(TestMaintain, self).setUp()
        self.tmp = self.useFixture(__import__('fixtures').TempDir()).path
        self.hosts = list(self.state['compute_hosts'])
        for host in self.hosts:
            self.addCleanup(self.enable_computes, host)

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

    def _maintain(self, *args, check=False, timeout=900):
        return self.openstack('compute', 'node', 'maintain', *args,
                              check=check, timeout=timeout)

    def test_aggregate_waves_exec_migrate_back(self):
        zone, zone_hosts = sorted(self.state['availability_zones'].items())[0]
        self.assertGreaterEqual(len(zone_hosts), 2)
        agg = 'minicloud-%s' % zone
        servers = {h: self.create_server(host=h).id for h in zone_hosts}
        for k in (1, 2):
            events = os.path.join(self.tmp, 'events-%d.jsonl' % k)
            with _Sampler(self.admin_conn, self.hosts) as sample:
                res = self._maintain(
                    '--aggregate', agg, '--max-hosts', k, '--exec', RESTART,
                    '--migrate-back', '--events', events,
                    '--state', os.path.join(self.tmp, 'state-%d' % k),
                    '-f', 'json')
            self.assertEqual(0, res.returncode, res.stderr)
            rows = json.loads(res.stdout)
            self.assertEqual(sorted(zone_hosts), sorted(r['Host']
                                                        for r in rows))
            self.assertTrue(all(r['Result'] == 'done' for r in rows), rows)
            waves = sorted({r['Wave'] for r in rows})
            self.assertEqual(list(range(1, -(-len(zone_hosts) // k) + 1)),
                             waves)
            self.assertGreater(sample.samples, 3)
            self.assertGreaterEqual(sample.most, 1)
            self.assertLessEqual(sample.most, k)
            for host, sid in servers.items():
                self.assertEqual(host, self._host_of(sid))
                self.assertEqual('enabled', self._status(host).status)
            recs = self._events(events)
            execs = [r['host'] for r in recs
                     if r['step'] == 'exec' and r['state'] == 'done']
            self.assertEqual(sorted(zone_hosts), sorted(execs))
            moved = {r['server'] for r in recs if r['server']}
            self.assertLessEqual(set(servers.values()), moved)

    def test_failing_exec_stops_at_second_host(self):
        first, second, third = self.hosts[:3]
        on_third = self.create_server(host=third)
        exec_cmd = 'test {host} != %s' % second
        res = self._maintain(first, second, third, '--order', 'given',
                             '--exec', exec_cmd, '-f', 'json')
        self.assertEqual(1, res.returncode, res.stderr)
        rows = {r['Host']: r for r in json.loads(res.stdout)}
        self.assertEqual('done', rows[first]['Result'])
        self.assertEqual('failed', rows[second]['Result'])
        self.assertEqual('not-started', rows[third]['Result'])
        svc = self._status(second)
        self.assertEqual('disabled', svc.status)
        self.assertIn('exec failed', svc.disabled_reason)
        self.assertEqual('enabled', self._status(first).status)
        self.assertEqual('enabled', self._status(third).status)
        self.assertEqual(third, self._host_of(on_third.id))

    def test_sigkill_and_resume(self):
        first, second = self.hosts[:2]
        log = os.path.join(self.tmp, 'exec.log')
        state = os.path.join(self.tmp, 'state.json')
        exec_cmd = 'echo {host} >> %s; sleep 4' % log
        argv = [os.path.join(os.path.dirname(sys.executable), 'openstack'),
                '--os-cloud', 'minicloud', 'compute', 'node', 'maintain',
                first, second, '--order', 'given', '--exec', exec_cmd,
                '--state', state]
        env = dict(os.environ, OS_CLIENT_CONFIG_FILE=base.CLOUDS_YAML)
        run = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        self.addCleanup(lambda: run.poll() is None and run.kill())
        deadline = time.time() + 300
        while time.time() < deadline:  # kill during the second host's step
            if os.path.exists(log) and second in open(log).read():
                break
            time.sleep(0.2)
        else:
            self.fail('the second host\'s step never started')
        run.send_signal(signal.SIGKILL)
        run.wait(30)
        self.assertEqual('disabled', self._status(second).status)
        self.assertIn('maintain:', self._status(second).disabled_reason)
        res = self._maintain(first, second, '--order', 'given', '--exec',
                             exec_cmd, '--state', state, '-f', 'json')
        self.assertEqual(0, res.returncode, res.stderr)
        with open(log) as f:
            ran = f.read().split()
        # first's step finished before the kill: not run again; second's
        # was cut: run again.
        self.assertEqual([first, second, second], ran)
        self.assertEqual('enabled', self._status(second).status)

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
