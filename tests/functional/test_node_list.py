"""``openstack compute node list`` on the minicloud, checked against
``openstack compute service list``."""

from tests.functional import base


class TestNodeList(base.FunctionalTestCase):

    def test_rows_match_service_list(self):
        compute = self.admin_conn.compute
        host = self.state['compute_hosts'][-1]
        server = self.create_server(host=host)
        [svc] = list(compute.services(host=host, binary='nova-compute'))
        self.addCleanup(self.enable_computes, host)
        # What a drain that was killed leaves: its lease in the reason.
        compute.disable_service(
            svc, host=host, binary='nova-compute',
            disabled_reason='ft list [osc-nodeops lease owner=ft@elsewhere:1'
                            ' at=2026-01-01T00:00:00Z]')

        rows = self.openstack('compute', 'node', 'list', '--long',
                              parse_json=True)
        services = self.openstack('compute', 'service', 'list', '--long',
                                  '--service', 'nova-compute',
                                  parse_json=True)
        self.assertEqual(sorted(s['Host'] for s in services),
                         [r['Host'] for r in rows])
        by_host = {s['Host']: s for s in services}
        for row in rows:
            svc = by_host[row['Host']]
            for col in ('Zone', 'Status', 'State', 'Disabled Reason',
                        'Forced Down'):
                self.assertEqual(svc[col], row[col], (row['Host'], col))
            on_host = list(compute.servers(all_projects=True,
                                           compute_host=row['Host']))
            self.assertEqual(len(on_host), row['Instances'], row['Host'])
        mine = {r['Host']: r for r in rows}[host]
        self.assertEqual('ft@elsewhere:1', mine['Lease Owner'])
        self.assertEqual('2026-01-01T00:00:00Z', mine['Lease Since'])
        self.assertGreaterEqual(mine['Running Instances'], 1)
        self.assertIn(server.id, {s.id for s in compute.servers(
            all_projects=True, compute_host=host)})

        zone, zone_hosts = sorted(self.state['availability_zones'].items())[0]
        rows = self.openstack('compute', 'node', 'list',
                              '--availability-zone', zone, parse_json=True)
        self.assertEqual(sorted(zone_hosts), [r['Host'] for r in rows])
        agg = 'minicloud-%s' % zone
        rows = self.openstack('compute', 'node', 'list', '--aggregate', agg,
                              parse_json=True)
        self.assertEqual(sorted(zone_hosts), [r['Host'] for r in rows])

    def test_default_columns(self):
        rows = self.openstack('compute', 'node', 'list', parse_json=True)
        self.assertEqual(['Host', 'Zone', 'Status', 'State', 'Updated At',
                          'Disabled Reason', 'Lease Owner'], list(rows[0]))
        self.assertEqual(sorted(self.state['compute_hosts']),
                         [r['Host'] for r in rows])

    def test_one_host_long(self):
        compute = self.admin_conn.compute
        running = self.create_server(host='c01')
        stopped = self.create_server(host='c01', stopped=True)
        elsewhere = self.create_server(host='c02')
        [row] = self.openstack('compute', 'node', 'list', '--host', 'c01',
                               '--long', parse_json=True)
        self.assertEqual('c01', row['Host'])
        on_host = list(compute.servers(all_projects=True,
                                       compute_host='c01'))
        self.assertIn(running.id, {s.id for s in on_host})
        self.assertIn(stopped.id, {s.id for s in on_host})
        self.assertNotIn(elsewhere.id, {s.id for s in on_host})
        self.assertEqual(len(on_host), row['Instances'])
        self.assertEqual(sum(1 for s in on_host if s.power_state == 1),
                         row['Running Instances'])
        self.assertLess(row['Running Instances'], row['Instances'])
        in_flight = [m for m in compute.migrations(host='c01')
                     if m.status not in ('completed', 'confirmed', 'error',
                                         'failed', 'cancelled', 'done',
                                         'reverted')]
        self.assertEqual(
            sum(1 for m in in_flight if m.source_compute == 'c01'),
            row['Migrations Out'])
        self.assertEqual(
            sum(1 for m in in_flight if m.dest_compute == 'c01'),
            row['Migrations In'])

        # Filters: the service's status and state, two hosts.
        rows = self.openstack('compute', 'node', 'list', '--host', 'c01',
                              '--host', 'c02', '--status', 'enabled',
                              '--state', 'up', parse_json=True)
        self.assertEqual(['c01', 'c02'], [r['Host'] for r in rows])
        rows = self.openstack('compute', 'node', 'list', '--host', 'c01',
                              '--status', 'disabled', parse_json=True)
        self.assertEqual([], rows)

    def test_unknown_host(self):
        res = self.openstack('compute', 'node', 'list', '--host',
                             'no-such-host', check=False)
        self.assertEqual(1, res.returncode)
        self.assertEqual('', res.stdout)
        self.assertIn('no-such-host', res.stderr)
        self.assertEqual(1, len(res.stderr.strip().splitlines()))

    def test_unknown_aggregate(self):
        res = self.openstack('compute', 'node', 'list', '--aggregate',
                             'no-such-aggregate', check=False)
        self.assertEqual(1, res.returncode)
        self.assertEqual('', res.stdout)
        self.assertIn('no-such-aggregate', res.stderr)
        self.assertEqual(1, len(res.stderr.strip().splitlines()))
