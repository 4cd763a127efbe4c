"""Smoke test of the minicloud itself (issue 2, "Done when").

Everything is checked through the APIs: a server with a neutron port goes
ACTIVE with its port bound and ACTIVE; live migration, cold migration of a
stopped server with resize confirm, hard reboot, and evacuation from a
killed, forced-down compute host all land where nova says they did.
"""

import time

from openstack import exceptions as sdk_exc

from tests.functional import base


class TestMinicloud(base.FunctionalTestCase):

    def _compute_service(self, host):
        svcs = list(self.admin_conn.compute.services(
            binary='nova-compute', host=host))
        self.assertEqual(1, len(svcs), 'nova-compute services on %s' % host)
        return svcs[0]

    def _wait_service(self, host, state, timeout=90):
        deadline = time.time() + timeout
        while True:
            svc = self._compute_service(host)
            if svc.state == state:
                return svc
            if time.time() > deadline:
                self.fail('nova-compute on %s not %s within %d s (is %s)'
                          % (host, state, timeout, svc.state))
            time.sleep(1)

    def _wait_port(self, port_id, host, timeout=60):
        deadline = time.time() + timeout
        while True:
            port = self.admin_conn.network.get_port(port_id)
            if port.binding_host_id == host and port.status == 'ACTIVE':
                return port
            if time.time() > deadline:
                self.fail('port %s not ACTIVE on %s within %d s: status %s,'
                          ' host %r' % (port_id, host, timeout, port.status,
                                        port.binding_host_id))
            time.sleep(1)

    def _actions(self, server):
        return [a.action for a in
                self.admin_conn.compute.server_actions(server.id)]

    def _restore_c03(self):
        self.minicloud('start-compute', 'c03')
        svc = self._compute_service('c03')
        self.admin_conn.compute.update_service_forced_down(
            svc, 'c03', 'nova-compute', False)
        self._wait_service('c03', 'up')

    def test_rig_status_and_clouds(self):
        out = self.minicloud('status').stdout
        self.assertIn('nova-compute-c03', out)
        self.assertNotIn(' down', out)
        # The demo cloud is a non-admin user: all-projects listing of
        # services is refused, its own server list works.
        self.openstack('server', 'list', cloud='minicloud-demo')
        res = self.openstack('compute', 'service', 'list',
                             cloud='minicloud-demo', check=False)
        self.assertNotEqual(0, res.returncode)
        services = self.openstack('compute', 'service', 'list',
                                  parse_json=True)
        hosts = {s['Host'] for s in services if s['Binary'] == 'nova-compute'}
        self.assertEqual({'c01', 'c02', 'c03'}, hosts)

    def test_volume_attach_detach(self):
        vol = self.create_volume()
        server = self.create_server(host='c02')
        self.admin_conn.compute.create_volume_attachment(
            server.id, volume_id=vol.id)
        vol = self.wait_for_volume(vol.id, 'in-use')
        self.assertEqual(1, len(vol.attachments))
        att = vol.attachments[0]
        self.assertEqual((server.id, 'c02'),
                         (att['server_id'], att['host_name']))
        attached = [a.volume_id for a in
                    self.admin_conn.compute.volume_attachments(server.id)]
        self.assertEqual([vol.id], attached)
        self.admin_conn.compute.delete_volume_attachment(server.id, vol.id)
        vol = self.wait_for_volume(vol.id, 'available')
        self.assertEqual([], vol.attachments)

    def test_restart_compute_then_hard_reboot(self):
        # restart-compute is a rebooted hypervisor: the fake driver has
        # forgotten the guest, nova has not; a hard reboot re-creates it.
        server = self.create_server(host='c02')
        self.addCleanup(self.minicloud, 'start-compute', 'c02')
        self.minicloud('restart-compute', 'c02')
        self._wait_service('c02', 'up', timeout=30)
        self.admin_conn.compute.reboot_server(server.id, 'HARD')
        server = self.wait_for_server(server.id, 'ACTIVE')
        self.assertEqual('c02', server.compute_host)
        self.assertEqual(1, server.power_state)
        self.assertIn('reboot', self._actions(server))

    def test_smoke(self):
        for h in self.state['compute_hosts']:
            svc = self._compute_service(h)
            self.assertEqual(('enabled', 'up', False),
                             (svc.status, svc.state, svc.is_forced_down),
                             'compute %s must be enabled and up for the '
                             'smoke test' % h)
        net_id = self.state['networks']['public']['id']
        port = self.admin_conn.network.create_port(
            network_id=net_id, name='ft-minicloud-port')
        self.addCleanup(self.admin_conn.network.delete_port, port.id,
                        ignore_missing=True)

        # Three servers on c01: one with a neutron port, one stopped.
        with_port = self.create_server(host='c01', port=port, wait=False)
        plain = self.create_server(host='c01', wait=False)
        stopped = self.create_server(host='c01', wait=False)
        with_port, plain, stopped = self._wait_all(
            [with_port.id, plain.id, stopped.id], 'ACTIVE')
        for s in (with_port, plain, stopped):
            self.assertEqual('c01', s.compute_host)
        self._wait_port(port.id, 'c01')
        self.admin_conn.compute.stop_server(stopped.id)
        stopped = self.wait_for_server(stopped.id, 'SHUTOFF')

        # Live-migrate the server with the port to c02: the port follows.
        self.admin_conn.compute.live_migrate_server(
            with_port.id, host='c02', block_migration='auto')
        with_port = self._wait_host(with_port.id, 'c02', 'ACTIVE')
        self._wait_port(port.id, 'c02')
        migs = list(self.admin_conn.compute.migrations(
            instance_uuid=with_port.id))
        self.assertIn('live-migration', [m.migration_type for m in migs])

        # Cold-migrate the stopped one, confirm the resize: still SHUTOFF.
        self.admin_conn.compute.migrate_server(stopped.id, host='c02')
        self.wait_for_server(stopped.id, 'VERIFY_RESIZE')
        self.admin_conn.compute.confirm_server_resize(stopped.id)
        stopped = self._wait_host(stopped.id, 'c02', 'SHUTOFF')

        # Hard reboot.
        self.admin_conn.compute.reboot_server(plain.id, 'HARD')
        plain = self.wait_for_server(plain.id, 'ACTIVE')
        self.assertIn('reboot', self._actions(plain))
        self.assertEqual('c01', plain.compute_host)

        # Evacuate from c03: refused (400) while c03 is up, works once its
        # process is dead and the service is forced down.
        victim = self.create_server(host='c03')
        self.assertRaises(
            sdk_exc.BadRequestException,
            self.admin_conn.compute.evacuate_server, victim.id)
        self.addCleanup(self._restore_c03)
        self.minicloud('kill-compute', 'c03')
        svc = self._compute_service('c03')
        self.admin_conn.compute.update_service_forced_down(
            svc, 'c03', 'nova-compute', True)
        self._wait_service('c03', 'down', timeout=10)
        self.admin_conn.compute.evacuate_server(victim.id)
        deadline = time.time() + 120
        while True:
            victim = self.admin_conn.compute.get_server(victim.id)
            if (victim.compute_host not in ('c03', None)
                    and victim.task_state is None
                    and victim.status in ('ACTIVE', 'SHUTOFF')):
                break
            if victim.status == 'ERROR' or time.time() > deadline:
                self.fail('evacuation did not finish: status %s, host %s, '
                          'task %s, fault %s' % (
                              victim.status, victim.compute_host,
                              victim.task_state, victim.fault))
            time.sleep(1)
        self.assertIn(victim.compute_host, ('c01', 'c02'))
        self.assertIn('evacuate', self._actions(victim))
        migs = [m for m in self.admin_conn.compute.migrations(
            instance_uuid=victim.id, migration_type='evacuation')]
        self.assertEqual(1, len(migs))
        self.assertEqual('c03', migs[0].source_compute)

    def _wait_host(self, server_id, host, status, timeout=120):
        deadline = time.time() + timeout
        while True:
            s = self.admin_conn.compute.get_server(server_id)
            if (s.compute_host == host and s.status == status
                    and s.task_state is None):
                return s
            if s.status == 'ERROR' or time.time() > deadline:
                self.fail('server %s not %s on %s: status %s, host %s, '
                          'task %s, fault %s' % (
                              server_id, status, host, s.status,
                              s.compute_host, s.task_state, s.fault))
            time.sleep(1)
