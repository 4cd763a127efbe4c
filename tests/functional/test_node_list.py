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

        rows = self.openstack('compute', 'node', 'list', parse_json=True)
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

    def test_unknown_aggregate(self):
        res = self.openstack('compute', 'node', 'list', '--aggregate',
                             'no-such-aggregate', check=False)
        self.assertEqual(1, res.returncode)
        self.assertEqual('', res.stdout)
        self.assertIn('no-such-aggregate', res.stderr)
        self.assertEqual(1, len(res.stderr.strip().splitlines()))
