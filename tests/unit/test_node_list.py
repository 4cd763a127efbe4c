"""``compute node list``: one row per compute host, from a few lists."""

import json

from openstack.compute.v2 import aggregate as _aggregate
import testtools

from osc_nodeops import errors
from osc_nodeops.ops import drain
from osc_nodeops.ops import node_list
from osc_nodeops.v1 import maintain
from tests.unit import fakes
from tests.unit.test_drain import FakeApp


class TestNodeList(testtools.TestCase):

    def setUp(self):
        super(TestNodeList, self).setUp()
        self.nova = fakes.FakeNova(hosts=('c01', 'c02', 'c03'))
        for host, zone in (('c01', 'az1'), ('c02', 'az1'), ('c03', 'az2')):
            self.nova.services[host].availability_zone = zone
        svc = self.nova.services['c02']
        svc.status = 'disabled'
        svc.disabled_reason = drain.with_lease('kernel', 'op@m:42')
        self.nova.services['c03'].is_forced_down = True
        self.nova.services['c03'].state = 'down'
        self.nova.add('a')
        self.nova.add('off', status='SHUTOFF', power_state=4)
        moving = self.nova.add('m', host='c02', task_state='migrating')
        self.nova.add_migration(moving.id, status='running', source='c02',
                                dest='c01')
        self.nova.add_migration(moving.id, status='error', source='c02',
                                dest='c03')
        self.nova.compute.aggregates.side_effect = lambda **kw: iter([
            _aggregate.Aggregate(id=1, name='rack1', hosts=['c01', 'c03'])])

    def rows(self, **kw):
        return {r.host: r for r in node_list.rows(
            self.nova.compute, node_list.Request(**kw))}

    def test_default_reads_services_and_leases_only(self):
        rows = self.rows()
        self.assertEqual(['c01', 'c02', 'c03'], sorted(rows))
        self.assertEqual(('disabled', 'op@m:42'), (rows['c02'].status,
                                                   rows['c02'].lease_owner))
        self.assertIsNone(rows['c01'].instances)
        self.assertEqual(7, len(rows['c01'].row()))
        self.assertEqual(1, self.nova.compute.services.call_count)
        self.assertEqual(1, self.nova.compute.aggregates.call_count)
        self.assertEqual(0, self.nova.compute.servers.call_count)
        self.assertEqual(0, self.nova.compute.migrations.call_count)

    def test_long_rows(self):
        rows = self.rows(long=True)
        self.assertEqual(['c01', 'c02', 'c03'], sorted(rows))
        c01, c02, c03 = rows['c01'], rows['c02'], rows['c03']
        self.assertEqual((2, 1, 0, 1), (c01.instances, c01.running,
                                        c01.migrations_out,
                                        c01.migrations_in))
        self.assertEqual(('disabled', 'op@m:42'), (c02.status,
                                                   c02.lease_owner))
        self.assertIsNotNone(c02.lease_since)
        self.assertEqual((1, 0), (c02.migrations_out, c02.migrations_in))
        self.assertTrue(c03.forced_down)
        self.assertEqual('down', c03.state)
        self.assertEqual(0, c03.migrations_in)  # the error one is over
        self.assertEqual(len(node_list.LONG_COLUMNS), len(c01.row(True)))
        # A few hosts: asked host by host, never one GET per server.
        self.assertEqual(3, self.nova.compute.servers.call_count)
        for call in self.nova.compute.servers.call_args_list:
            self.assertIn(call.kwargs['compute_host'], rows)
            self.assertTrue(call.kwargs['all_projects'])
        self.assertEqual(3, self.nova.compute.migrations.call_count)
        self.assertEqual(0, self.nova.compute.get_server.call_count)

    def test_one_host_long_reads_only_that_host(self):
        rows = self.rows(hosts=('c02',), long=True)
        self.assertEqual(['c02'], list(rows))
        self.assertEqual((1, 1, 1, 0), (
            rows['c02'].instances, rows['c02'].running,
            rows['c02'].migrations_out, rows['c02'].migrations_in))
        c = self.nova.compute
        self.assertEqual('c02', c.services.call_args.kwargs['host'])
        c.servers.assert_called_once_with(details=True, all_projects=True,
                                          compute_host='c02')
        c.migrations.assert_called_once_with(host='c02')

    def test_many_hosts_long_lists_servers_once(self):
        hosts = ['h%02d' % i for i in range(node_list.PER_HOST_MAX + 2)]
        nova = fakes.FakeNova(hosts=hosts)
        for i in range(30):
            nova.add('s%d' % i, host=hosts[i % len(hosts)])
        moving = nova.add('mv', host='h03', task_state='migrating')
        nova.add_migration(moving.id, status='running', source='h03',
                           dest='h04')
        nova.add_migration(moving.id, status='completed', source='h05',
                           dest='h03')
        rows = {r.host: r for r in node_list.rows(
            nova.compute, node_list.Request(long=True))}
        self.assertEqual(hosts, sorted(rows))
        self.assertEqual(31, sum(r.instances for r in rows.values()))
        self.assertEqual((1, 0), (rows['h03'].migrations_out,
                                  rows['h03'].migrations_in))
        self.assertEqual(1, rows['h04'].migrations_in)
        self.assertEqual(0, rows['h05'].migrations_out)
        nova.compute.servers.assert_called_once_with(details=True,
                                                     all_projects=True)
        # Only the host where a server is caught moving.
        nova.compute.migrations.assert_called_once_with(host='h03')

    def test_filters(self):
        def hosts(**kw):
            return sorted(self.rows(**kw))

        self.assertEqual(['c01', 'c02'], hosts(zone='az1'))
        self.assertEqual(['c01', 'c03'], hosts(aggregate='rack1'))
        self.assertEqual(['c01'], hosts(aggregate='1', zone='az1'))
        self.assertEqual(['c01', 'c03'], hosts(hosts=('c03', 'c01')))
        self.assertEqual(['c02'], hosts(status='disabled'))
        self.assertEqual(['c01', 'c03'], hosts(status='enabled'))
        self.assertEqual(['c03'], hosts(state='down'))
        self.assertEqual(['c02'], hosts(leased=True))
        self.assertEqual([], hosts(leased=True, status='enabled'))
        self.assertRaises(errors.NotFound, self.rows, aggregate='nope')
        self.assertRaises(errors.NotFound, self.rows, zone='nope')
        e = self.assertRaises(errors.NotFound, self.rows,
                              hosts=('c01', 'c09'))
        self.assertIn('c09', str(e))

    def test_bad_requests_before_any_call(self):
        for kw in ({'hosts': ('c01', 'c01')}, {'hosts': (' ',)},
                   {'status': 'up'}, {'state': 'enabled'}):
            self.assertRaises(errors.UsageError, self.rows, **kw)
        self.assertEqual(0, self.nova.compute.services.call_count)

    def test_gather_counts_for_maintain(self):
        rows = {r.host: r for r in node_list.gather(self.nova.compute)}
        self.assertEqual(2, rows['c01'].instances)

    def run_list(self, *argv):
        app = FakeApp(self.nova)
        cmd = maintain.ListNode(app, None)
        args = cmd.get_parser('list').parse_args(list(argv))
        return cmd.run(args), app

    def test_command(self):
        rc, app = self.run_list('-f', 'json')
        self.assertEqual(0, rc)
        out = json.loads(app.stdout.getvalue())
        self.assertEqual(list(node_list.COLUMNS), list(out[0]))
        self.assertEqual('op@m:42', out[1]['Lease Owner'])
        self.assertIsNone(out[0]['Lease Owner'])
        self.assertEqual(0, self.nova.compute.servers.call_count)

    def test_command_long_host(self):
        rc, app = self.run_list('--host', 'c01', '--long', '-f', 'json')
        self.assertEqual(0, rc)
        [row] = json.loads(app.stdout.getvalue())
        self.assertEqual(list(node_list.LONG_COLUMNS), list(row))
        self.assertEqual(('c01', 2, 1, 0, 1), (
            row['Host'], row['Instances'], row['Running Instances'],
            row['Migrations Out'], row['Migrations In']))

    def test_command_filters(self):
        rc, app = self.run_list('--status', 'disabled', '--leased', '-f',
                                'value', '-c', 'Host')
        self.assertEqual((0, 'c02\n'), (rc, app.stdout.getvalue()))
        rc, app = self.run_list('--state', 'down', '-f', 'value', '-c',
                                'Host')
        self.assertEqual((0, 'c03\n'), (rc, app.stdout.getvalue()))

    def test_command_unknown_host(self):
        rc, app = self.run_list('--host', 'c09')
        self.assertEqual(1, rc)
        self.assertEqual('', app.stdout.getvalue())
        self.assertIn('c09', app.stderr.getvalue())

    def test_command_usage_errors(self):
        rc, app = self.run_list('--host', 'c01', '--host', 'c01')
        self.assertEqual(2, rc)
        self.assertEqual(0, app.logins)
