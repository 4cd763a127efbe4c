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

    def test_rows(self):
        rows = {r.host: r for r in node_list.gather(self.nova.compute)}
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
        # Lists only: one each, whatever the number of hosts.
        self.assertEqual(1, self.nova.compute.services.call_count)
        self.assertEqual(1, self.nova.compute.servers.call_count)
        self.assertEqual(1, self.nova.compute.migrations.call_count)
        self.assertEqual(0, self.nova.compute.get_server.call_count)

    def test_filters(self):
        self.assertEqual(['c01', 'c02'], [r.host for r in node_list.gather(
            self.nova.compute, zone='az1')])
        self.assertEqual(['c01', 'c03'], [r.host for r in node_list.gather(
            self.nova.compute, aggregate='rack1')])
        self.assertEqual(['c01'], [r.host for r in node_list.gather(
            self.nova.compute, aggregate='1', zone='az1')])
        self.assertRaises(errors.NotFound, node_list.gather,
                          self.nova.compute, aggregate='nope')
        self.assertRaises(errors.NotFound, node_list.gather,
                          self.nova.compute, zone='nope')

    def test_command(self):
        app = FakeApp(self.nova)
        cmd = maintain.ListNode(app, None)
        args = cmd.get_parser('list').parse_args(['-f', 'json'])
        self.assertEqual(0, cmd.run(args))
        out = json.loads(app.stdout.getvalue())
        self.assertEqual(list(node_list.COLUMNS), list(out[0]))
        self.assertEqual('op@m:42', out[1]['Lease Owner'])
