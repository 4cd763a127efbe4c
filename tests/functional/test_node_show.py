"""``openstack compute node show`` on the minicloud."""

import json
import subprocess
import time

from tests.functional import base


class TestNodeShow(base.FunctionalTestCase):

    def test_show_host_with_servers_disabled(self):
        compute = self.admin_conn.compute
        active = self.create_server(host='c02')
        stopped = self.create_server(host='c02', stopped=True)
        [svc] = list(compute.services(host='c02', binary='nova-compute'))
        self.addCleanup(self.enable_computes, 'c02')
        compute.disable_service(svc, host='c02', binary='nova-compute',
                                disabled_reason='ft show')

        info = self.openstack('compute', 'node', 'show', 'c02',
                              parse_json=True)
        self.assertEqual('c02', info['Host'])
        self.assertEqual('disabled', info['Status'])
        self.assertEqual('ft show', info['Disabled Reason'])
        self.assertEqual('up', info['State'])
        self.assertFalse(info['Forced Down'])
        self.assertIsNotNone(info['Last Heartbeat'])
        # the rig reports every few seconds
        self.assertLess(info['Heartbeat Age Seconds'], 60)
        self.assertGreaterEqual(info['Heartbeat Age Seconds'], 0)
        self.assertEqual('c02', info['Hypervisor'])
        self.assertEqual('up', info['Hypervisor State'])
        on_host = list(compute.servers(all_projects=True,
                                       compute_host='c02'))
        self.assertIn(active.id, {s.id for s in on_host})
        self.assertIn(stopped.id, {s.id for s in on_host})
        self.assertEqual(len(on_host), info['Instances'])
        self.assertGreaterEqual(info['Instances By Status']['ACTIVE'], 1)
        self.assertGreaterEqual(info['Instances By Status']['SHUTOFF'], 1)
        self.assertEqual(
            sum(1 for s in on_host if s.status == 'ACTIVE'),
            info['Running Instances'])
        self.assertIsInstance(info['Migrations In Progress'], list)
        # what runs there: every server, with name, ID, status, project
        listed = {s['id']: s for s in info['Servers']}
        self.assertEqual({s.id for s in on_host}, set(listed))
        self.assertEqual({'name': stopped.name, 'id': stopped.id,
                          'status': 'SHUTOFF',
                          'project_id': stopped.project_id},
                         listed[stopped.id])

        # -f shell can be eval'd: identifiers, no Python reprs
        shell = self.openstack('compute', 'node', 'show', 'c02', '-f',
                               'shell').stdout
        res = subprocess.run(
            ['sh', '-c', shell + '\nprintf "%s|%s|%s" "$state" '
             '"$heartbeat_age_seconds" "$instances_by_status"'],
            capture_output=True, text=True, check=True)
        state, age, by_status = res.stdout.split('|')
        self.assertEqual('up', state)
        self.assertTrue(age.isdigit(), shell)
        self.assertIn("SHUTOFF='", by_status)
        self.assertNotIn('{', shell)
        self.assertIn(stopped.id, shell)

        table = self.openstack('compute', 'node', 'show', 'c02').stdout
        self.assertIn('Disabled Reason', table)
        self.assertIn('ft show', table)

    def test_unknown_host(self):
        res = self.openstack('compute', 'node', 'show', 'no-such-host',
                             check=False)
        self.assertEqual(1, res.returncode)
        self.assertEqual('', res.stdout)
        self.assertEqual(1, len(res.stderr.strip().splitlines()))
        self.assertIn('no-such-host', res.stderr)

    def _confirm_and_wait(self, server_id):
        # Confirm, then wait for nova to finish confirming: a delete that
        # arrives while the migration is 'confirming' races nova's own
        # confirm and fails with a 500 (AttributeError on the migration
        # context in _confirm_resize), seen on a clean CI rig.
        compute = self.admin_conn.compute
        compute.confirm_server_resize(server_id)
        deadline = time.time() + 60
        while time.time() < deadline:
            migs = list(compute.migrations(instance_uuid=server_id))
            if all(m.status in ('confirmed', 'error', 'failed')
                   for m in migs):
                return
            time.sleep(1)
        raise AssertionError('migration of %s not confirmed within 60 s'
                             % server_id)

    def test_finished_migration_is_not_in_progress(self):
        compute = self.admin_conn.compute
        srv = self.create_server(host='c02', stopped=True)
        compute.migrate_server(srv.id)
        self.wait_for_server(srv.id, 'VERIFY_RESIZE')
        self.addCleanup(self._confirm_and_wait, srv.id)
        [mig] = [m for m in compute.migrations(instance_uuid=srv.id)]
        self.assertEqual('finished', mig.status)
        info = self.openstack('compute', 'node', 'show', 'c02',
                              parse_json=True)
        self.assertFalse([line for line in info['Migrations In Progress']
                          if line.startswith('%s ' % mig.id)], info)


class TestNodeShowCheck(base.FunctionalTestCase):
    """``compute node show --require-up``: exit 1 when nova-compute is down,
    0 when it is up again; the fields are printed either way."""

    def _state(self, host):
        [svc] = [s for s in self.admin_conn.compute.services(
            binary='nova-compute', host=host) if s.host == host]
        return svc.state

    def _wait_state(self, host, state, timeout=120):
        deadline = time.time() + timeout
        while self._state(host) != state:
            if time.time() > deadline:
                self.fail('nova-compute on %s not %s within %ds' % (
                    host, state, timeout))
            time.sleep(1)

    def _start(self, host):
        self.minicloud('start-compute', host)
        self._wait_state(host, 'up')

    def test_check_exit_status_follows_the_service(self):
        res = self.openstack('compute', 'node', 'show', 'c01', '--require-up',
                             '-f', 'json', check=False)
        self.assertEqual(0, res.returncode, res.stderr)
        self.assertNotIn('check failed', res.stderr)

        self.addCleanup(self._start, 'c01')
        self.minicloud('kill-compute', 'c01')
        # nova says down after its service_down_time (12 s on the rig)
        self._wait_state('c01', 'down')
        res = self.openstack('compute', 'node', 'show', 'c01', '--require-up',
                             '-f', 'json', check=False)
        self.assertEqual(1, res.returncode, res.stderr)
        self.assertEqual('down', json.loads(res.stdout)['State'])
        [line] = res.stderr.strip().splitlines()
        self.assertIn('nova-compute on c01 is down', line)
        # Without --require-up: the same fields, exit 0.
        res = self.openstack('compute', 'node', 'show', 'c01', check=False)
        self.assertEqual(0, res.returncode)

        self._start('c01')
        res = self.openstack('compute', 'node', 'show', 'c01', '--require-up',
                             '-f', 'json', check=False)
        self.assertEqual(0, res.returncode, res.stderr)
        self.assertNotIn('check failed', res.stderr)
