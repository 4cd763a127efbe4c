"""``compute node show``: S8 through the API."""

import datetime
import json

import testtools

from osc_nodeops import errors
from osc_nodeops.ops import node_show
from osc_nodeops.v1 import node
from tests.unit import fakes
from tests.unit.test_drain import FakeApp


NOW = datetime.datetime(2026, 1, 1, 0, 0, 30, tzinfo=datetime.timezone.utc)


class TestGather(testtools.TestCase):

    def setUp(self):
        super(TestGather, self).setUp()
        self.nova = fakes.FakeNova()
        svc = self.nova.services['c01']
        svc.status = 'disabled'
        svc.disabled_reason = 'disk swap'
        svc.updated_at = '2026-01-01T00:00:00.000000'
        self.nova.add('a')
        self.nova.add('b')
        self.nova.add('off', status='SHUTOFF', power_state=4)
        moving = self.nova.add('m', task_state='migrating')
        self.nova.add_migration(moving.id, status='running', dest='c02')
        self.nova.add_migration(moving.id, status='error', dest='c03')
        self.nova.add('elsewhere', host='c02')

    def test_fields(self):
        info = node_show.gather(self.nova.compute, 'c01', now=NOW)
        self.assertEqual('c01', info['Host'])
        self.assertEqual('disabled', info['Service Status'])
        self.assertEqual('up', info['Service State'])
        self.assertEqual('disk swap', info['Disabled Reason'])
        self.assertFalse(info['Forced Down'])
        self.assertEqual('2026-01-01T00:00:00Z', info['Last Heartbeat'])
        self.assertEqual(30, info['Heartbeat Age (s)'])
        self.assertEqual(('c01', 'up', 'enabled'), (
            info['Hypervisor'], info['Hypervisor State'],
            info['Hypervisor Status']))
        self.assertEqual(4, info['Instances'])
        self.assertEqual(3, info['Running Instances'])
        self.assertEqual({'ACTIVE': 3, 'SHUTOFF': 1},
                         info['Instances By Status'])
        [line] = info['Migrations In Progress']
        self.assertIn('c01->c02 running', line)

    def test_unknown_host(self):
        self.assertRaises(errors.NotFound, node_show.gather,
                          self.nova.compute, 'nope')

    def test_command_json(self):
        app = FakeApp(self.nova)
        cmd = node.ShowNode(app, None)
        args = cmd.get_parser('show').parse_args(['c01', '-f', 'json'])
        self.assertEqual(0, cmd.run(args))
        out = json.loads(app.stdout.getvalue())
        self.assertEqual({'ACTIVE': 3, 'SHUTOFF': 1},
                         out['Instances By Status'])
        self.assertEqual(1, len(out['Migrations In Progress']))
        self.assertEqual('disk swap', out['Disabled Reason'])

    def test_command_unknown_host(self):
        app = FakeApp(self.nova)
        cmd = node.ShowNode(app, None)
        args = cmd.get_parser('show').parse_args(['nope'])
        self.assertEqual(1, cmd.run(args))
        self.assertEqual("no nova-compute service on host 'nope'\n",
                         app.stderr.getvalue())
        self.assertEqual('', app.stdout.getvalue())
