"""``openstack compute node show`` on the minicloud."""

from tests.functional import base


class TestNodeShow(base.FunctionalTestCase):

    def _enable(self, host):
        compute = self.admin_conn.compute
        for svc in compute.services(host=host, binary='nova-compute'):
            if svc.status == 'disabled':
                compute.enable_service(svc, host=host, binary=svc.binary)

    def test_show_host_with_servers_disabled(self):
        compute = self.admin_conn.compute
        active = self.create_server(host='c02')
        stopped = self.create_server(host='c02', stopped=True)
        [svc] = list(compute.services(host='c02', binary='nova-compute'))
        self.addCleanup(self._enable, 'c02')
        compute.disable_service(svc, host='c02', binary='nova-compute',
                                disabled_reason='ft show')

        info = self.openstack('compute', 'node', 'show', 'c02',
                              parse_json=True)
        self.assertEqual('c02', info['Host'])
        self.assertEqual('disabled', info['Service Status'])
        self.assertEqual('ft show', info['Disabled Reason'])
        self.assertEqual('up', info['Service State'])
        self.assertFalse(info['Forced Down'])
        self.assertIsNotNone(info['Last Heartbeat'])
        # the rig reports every few seconds
        self.assertLess(info['Heartbeat Age (s)'], 60)
        self.assertGreaterEqual(info['Heartbeat Age (s)'], 0)
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
