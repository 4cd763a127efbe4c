"""``server recover-all`` (reboot mode) and ``port float attach/detach``
through the rig's fault proxy (cloud ``minicloud-faulty``), issue 14: 503s
and connection resets never lose track of an action nor issue it twice, a
call held open for ever is cut by the per-call timeout (``--api-timeout``),
and Ctrl-C works while a call hangs.  (The drain's own proofs are in
test_drain_inflight.py and test_drain.py's TestDrainHungAPI.)
"""

import json
import os
import signal
import subprocess
import sys
import time
import uuid

from testtools import content

from tests.functional import base
from tests.functional import test_port_float
from tests.functional import test_recover


def _cli_env():
    env = dict(os.environ, OS_CLIENT_CONFIG_FILE=base.CLOUDS_YAML)
    for key in list(env):
        if key.startswith('OS_') and key != 'OS_CLIENT_CONFIG_FILE':
            del env[key]
    return env


class _Interrupts(base.FaultsMixin):

    def popen(self, *args, cloud='minicloud-faulty'):
        """The command started as a script's ``cmd &`` (or a CI runner)
        starts it: with SIGINT ignored, which the child inherits and
        Python then leaves ignored (issue 19 items 3-4: one SIGINT was
        lost on a fresh machine's CI run, not in a terminal)."""
        exe = os.path.join(os.path.dirname(sys.executable), 'openstack')
        proc = subprocess.Popen(
            ['sh', '-c', 'trap "" INT; exec "$@"', 'sh', exe,
             '--os-cloud', cloud] + list(args),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=_cli_env())
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        return proc

    def wait_hang(self, mark, service, proc, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if 'hang' in self.injected_since(mark, service):
                return
            if proc.poll() is not None:
                self.fail('the command ended before any call hung: %s'
                          % (proc.communicate(),))
            time.sleep(0.2)
        self.fail('no %s call hung within %d s' % (service, timeout))

    def ctrl_c(self, proc, twice=True):
        """SIGINT (twice: the second means 'now'); the exit status, the
        output and how long the command took to leave."""
        proc.send_signal(signal.SIGINT)
        if twice:
            time.sleep(1)
            proc.send_signal(signal.SIGINT)
        start = time.monotonic()
        out, err = proc.communicate(timeout=60)
        self.addDetail('stderr', content.text_content(err))
        return proc.returncode, out, err, time.monotonic() - start


class TestRecoverThroughFaults(_Interrupts, test_recover._Base):

    def _rebooted(self, count):
        servers = self.create_servers(count, host='c01')
        self.addCleanup(self._wait_service, 'c01', 'up')
        self.minicloud('restart-compute', 'c01')
        self._wait_service('c01', 'up')
        for s in servers:
            # nova's start-up power-state sync marks the forgotten guests
            self._wait(lambda: self.admin_conn.compute.get_server(
                s.id).power_state == 0, 'power state NOSTATE of %s' % s.id)
        return servers

    def reboots(self, server_id):
        return [a.action for a in self.admin_conn.compute.server_actions(
            server_id)].count('reboot')

    def test_reboot_mode_through_503_resets_and_hangs(self):
        servers = self._rebooted(4)
        ids = {s.id for s in servers}
        mark = self.fault_mark()
        # at most 3 faults in a row on one request: the reads try 5 times
        self.set_faults('nova', **{'503': 0.2, 'reset': 0.05,
                                   'hang': 0.05, 'max_streak': 3})
        start = time.monotonic()
        res, rows = self.recover('c01', '--timeout', '120', '--api-timeout',
                                 '3', '--retries', '2',
                                 cloud='minicloud-faulty')
        took = time.monotonic() - start
        self.minicloud('faults', 'clear')
        injected = self.injected_since(mark, 'nova')
        self.addDetail('faults', content.text_content(
            '%d injected in %.0f s: %d 503, %d reset, %d hang\n%s' % (
                len(injected), took, injected.count('503'),
                injected.count('reset'), injected.count('hang'),
                res.stderr)))
        self.assertGreater(injected.count('503'), 0,
                           'no 503 injected: the test proved nothing')
        mine = {r['ID']: r for r in rows if r['ID'] in ids}
        self.assertEqual(ids, set(mine), res.stderr)
        for sid in ids:
            self.assertEqual('running', mine[sid]['Result'], mine[sid])
            srv = self.admin_conn.compute.get_server(sid)
            self.assertEqual(('ACTIVE', 1, 'c01'),
                             (srv.status, srv.power_state, srv.compute_host))
            # the soft reboot of a forgotten guest, then the hard one:
            # nothing issued twice because a call failed or hung
            self.assertLessEqual(self.reboots(sid), 2,
                                 [a.action for a in self.admin_conn.compute
                                  .server_actions(sid)])
        self.assertEqual(0, res.returncode, res.stderr)

    # The two below need no rebooted host: the first call hangs already.

    def test_a_call_that_never_answers_ends_the_command(self):
        self.set_faults('nova', hang=1)
        mark = self.fault_mark()
        start = time.monotonic()
        res, rows = self.recover('c01', '--api-timeout', '2', '--timeout',
                                 '30', cloud='minicloud-faulty')
        took = time.monotonic() - start
        self.addDetail('stderr', content.text_content(res.stderr))
        self.assertIn('hang', self.injected_since(mark, 'nova'))
        self.assertNotEqual(0, res.returncode)
        self.assertLess(took, 120)
        self.assertNotIn('Traceback', res.stderr)

    def test_ctrl_c_while_a_call_hangs(self):
        servers = self.create_servers(1, host='c01')
        self.set_faults('nova', hang=1)
        mark = self.fault_mark()
        proc = self.popen('server', 'recover-all', 'c01', '--api-timeout',
                          '600', '--poll-interval', '1', '-f', 'json')
        self.wait_hang(mark, 'nova', proc)
        rc, out, err, took = self.ctrl_c(proc, twice=False)
        self.assertLess(took, 15)
        self.assertEqual(130, rc, err)
        self.assertNotIn('Traceback', err)
        self.minicloud('faults', 'clear')
        for s in servers:   # nothing was done to it
            self.assertEqual(0, self.reboots(s.id))
            self.assertEqual('ACTIVE', self.admin_conn.compute.get_server(
                s.id).status)


class TestPortFloatThroughFaults(_Interrupts,
                                 test_port_float.PortFloatTestCase):

    def faulty(self, *args, check=True):
        return self.openstack('port', 'float', *args, '-f', 'json',
                              cloud='minicloud-faulty', check=check)

    def test_attach_detach_through_503_and_resets(self):
        server = self.create_server(host='c01')
        row = self.float_create('ft-faults-%s' % uuid.uuid4().hex[:6])
        port_id, addrs = row['ID'], sorted(row['Addresses'])
        mark = self.fault_mark()
        for service in ('nova', 'neutron'):
            self.set_faults(service, **{'503': 0.2, 'reset': 0.05,
                                        'max_streak': 3})
        for _ in range(4):
            res = self.faulty('attach', port_id, server.id)
            attached = json.loads(res.stdout)
            self.assertEqual((server.id, 'ACTIVE'),
                             (attached['Server ID'], attached['Status']),
                             res.stderr)
            res = self.faulty('detach', port_id)
            self.assertEqual(server.id,
                             json.loads(res.stdout)['Detached From'],
                             res.stderr)
        self.minicloud('faults', 'clear')
        injected = self.injected_since(mark)
        self.addDetail('faults', content.text_content(
            '%d injected: %d 503, %d reset' % (
                len(injected), injected.count('503'),
                injected.count('reset'))))
        self.assertGreater(injected.count('503'), 0,
                           'no 503 injected: the test proved nothing')
        port = self.admin_conn.network.get_port(port_id)
        self.assertEqual(('', addrs), (port.device_id, sorted(
            f['ip_address'] for f in port.fixed_ips)))
        self.assertEqual([], [i.port_id for i in
                              self.admin_conn.compute.server_interfaces(
                                  server.id)])
        self.assertEqual([port_id], list(self.ports_on_net()))

    def test_a_call_that_never_answers_ends_the_command(self):
        server = self.create_server(host='c01')
        row = self.float_create('ft-hang-%s' % uuid.uuid4().hex[:6])
        self.set_faults('nova', hang=1)
        mark = self.fault_mark()
        start = time.monotonic()
        res = self.openstack('port', 'float', 'attach', row['ID'], server.id,
                             '--api-timeout', '2', cloud='minicloud-faulty',
                             check=False)
        took = time.monotonic() - start
        self.addDetail('stderr', content.text_content(res.stderr))
        self.assertIn('hang', self.injected_since(mark, 'nova'))
        self.assertEqual(1, res.returncode, res.stderr)
        self.assertLess(took, 60)
        self.assertNotIn('Traceback', res.stderr)
        self.assertEqual(1, len(res.stderr.strip().splitlines()), res.stderr)
        self.minicloud('faults', 'clear')
        self.assertEqual('', self.admin_conn.network.get_port(
            row['ID']).device_id)

    def test_ctrl_c_while_a_call_hangs(self):
        server = self.create_server(host='c01')
        row = self.float_create('ft-ctrl-c-%s' % uuid.uuid4().hex[:6])
        self.set_faults('nova', hang=1)
        mark = self.fault_mark()
        proc = self.popen('port', 'float', 'attach', row['ID'], server.id,
                          '--api-timeout', '600')
        self.wait_hang(mark, 'nova', proc)
        rc, out, err, took = self.ctrl_c(proc, twice=False)
        self.assertLess(took, 15)
        self.assertEqual(130, rc, err)
        self.assertNotIn('Traceback', err)


class TestCtrlCEveryCommand(_Interrupts, test_port_float.PortFloatTestCase):
    """One SIGINT ends every command within seconds while its first nova
    call hangs (version discovery: ``hang=1`` on nova, ``--api-timeout
    600`` where there is one), started with SIGINT ignored; exit 130, no
    traceback, nothing changed."""

    def test_one_ctrl_c_ends_every_command(self):
        server = self.create_server(host='c01')
        port = self.float_create('ft-ctrl-c-%s' % uuid.uuid4().hex[:6])
        name = 'ft-ctrl-c-new-%s' % uuid.uuid4().hex[:6]
        t = ('--api-timeout', '600')
        commands = [
            ('compute', 'node', 'drain', 'c01') + t,
            ('compute', 'node', 'undrain', 'c01') + t,
            ('compute', 'node', 'show', 'c01'),
            ('compute', 'node', 'list'),
            ('compute', 'node', 'maintain', 'c01', '--exec', 'true') + t,
            ('compute', 'node', 'volumes', 'c01'),
            ('port', 'float', 'create', name, '--network', self.net.id) + t,
            ('port', 'float', 'list') + t,
            ('port', 'float', 'detach', port['ID']) + t,
            ('port', 'float', 'move', port['ID'], server.id) + t,
            ('port', 'float', 'recover', '198.51.100.77', '--network',
             self.net.id) + t,
        ]
        self.set_faults('nova', hang=1)
        failed = {}
        for args in commands:
            mark = self.fault_mark()
            proc = self.popen(*args)
            self.wait_hang(mark, 'nova', proc, timeout=120)
            proc.send_signal(signal.SIGINT)
            start = time.monotonic()
            try:
                out, err = proc.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
                err = 'still running 20 s after one SIGINT\n' + err
            took = time.monotonic() - start
            if proc.returncode != 130 or took > 15 or 'Traceback' in err:
                failed[' '.join(args[:4])] = (proc.returncode,
                                              round(took, 1), err[-300:])
        self.assertEqual({}, failed)
        self.minicloud('faults', 'clear')
        # nothing changed
        [svc] = self.admin_conn.compute.services(binary='nova-compute',
                                                 host='c01')
        self.assertEqual('enabled', svc.status)
        self.assertEqual('', self.admin_conn.network.get_port(
            port['ID']).device_id)
        self.assertEqual([port['ID']], list(self.ports_on_net()))
        self.assertEqual([], list(self.admin_conn.compute.server_migrations(
            server.id)))
