"""The cliff classes of ``openstack port float ...`` over the fakes."""

import io
from unittest import mock

import testtools

from osc_nodeops.ops import port_float as pf
from osc_nodeops.ops.port_float import reachability
from osc_nodeops.v1 import port_float as cmd
from tests.unit import test_port_float_fakes as fakes


class CliBase(testtools.TestCase):

    def setUp(self):
        super(CliBase, self).setUp()
        self.conn = fakes.FakeConn()
        self.net = self.conn.neutron.add_network(
            'public', [{'cidr': '203.0.113.0/24'},
                       {'cidr': '2001:db8::/64'}])
        self.app = mock.Mock()
        self.app.client_manager.sdk_connection = self.conn
        self.stderr = self.app.stderr = io.StringIO()
        self.app.stdout = io.StringIO()

    def run_cmd(self, klass, argv):
        command = klass(self.app, None)
        parser = command.get_parser('openstack port float')
        args = parser.parse_args(argv)
        command.exit_status = 0
        result = command.take_action(args)
        return command, result

    def run_failing(self, klass, argv):
        """Run through cliff's ``run``: (exit status, stderr)."""
        command = klass(self.app, None)
        args = command.get_parser('openstack port float').parse_args(argv)
        return command.run(args), self.stderr.getvalue()


class TestCli(CliBase):

    def test_create_parses_fixed_ips_and_shows_addresses(self):
        command, (labels, values) = self.run_cmd(cmd.CreatePortFloat, [
            'www.example.com', '--network', 'public',
            '--fixed-ip', 'ip-address=203.0.113.9',
            '--fixed-ip', 'subnet=2001:db8::/64'])
        row = dict(zip(labels, values))
        self.assertEqual('www.example.com', row['Name'])
        self.assertEqual('203.0.113.9, 2001:db8::1', row['Addresses'])
        self.assertEqual(pf.TAG, row['Tags'])
        self.assertIn('created float port', self.stderr.getvalue())

    def test_unknown_network_is_one_line_exit_1(self):
        self.assertEqual(
            (1, "network 'nope' not found\n"),
            self.run_failing(cmd.CreatePortFloat, ['x', '--network', 'nope']))
        self.assertEqual({}, self.conn.neutron.ports)

    def test_parser_rejects_bad_numbers(self):
        command = cmd.CheckPortFloat(self.app, None)
        parser = command.get_parser('check')
        with mock.patch('sys.stderr', io.StringIO()):
            for argv in (['p', '--tcp-port', '0'],
                         ['p', '--tcp-port', '70000'],
                         ['p', '--timeout', '-1']):
                self.assertRaises(SystemExit, parser.parse_args, argv)
        parser = cmd.RecoverPortFloat(self.app, None).get_parser('r')
        with mock.patch('sys.stderr', io.StringIO()):
            self.assertRaises(SystemExit, parser.parse_args,
                              ['1.2.3.4', '--network', 'n',
                               '--max-attempts', '0'])
            self.assertRaises(SystemExit, parser.parse_args, ['1.2.3.4'])

    def test_list_columns(self):
        self.conn.neutron.add_port(self.net, ['203.0.113.5'],
                                   tags=[pf.TAG], name='a')
        command, (labels, rows) = self.run_cmd(cmd.ListPortFloat, [])
        self.assertEqual(('ID', 'Name', 'Network', 'Addresses', 'Server ID',
                          'Server Name', 'Binding Host', 'Status'), labels)
        self.assertEqual(1, len(rows))
        self.assertEqual('203.0.113.5', rows[0][3])

    def test_check_exit_status_follows_results(self):
        port = self.conn.neutron.add_port(self.net, ['203.0.113.5'],
                                          tags=[pf.TAG])
        with mock.patch.object(reachability, 'probe',
                               return_value=('refused', 'x', 0.0)):
            command, (labels, rows) = self.run_cmd(cmd.CheckPortFloat,
                                                   [port.id])
        self.assertEqual(1, command.exit_status)
        self.assertEqual('refused', rows[0][3])
        with mock.patch.object(reachability, 'probe',
                               return_value=('open', 'x', 0.0)):
            command, _ = self.run_cmd(cmd.CheckPortFloat, [port.id])
        self.assertEqual(0, command.exit_status)

    def test_recover_incomplete_is_an_error_with_state(self):
        self.conn.neutron.allow_ip_address = False
        rc, err = self.run_failing(
            cmd.RecoverPortFloat,
            ['203.0.113.200', '--network', 'public', '--max-attempts', '3'])
        self.assertEqual(1, rc)
        self.assertIn('not done: ', err)
        self.assertIn('3 attempts', err.splitlines()[-1])
        self.assertEqual({}, self.conn.neutron.ports)

    def test_detach_not_attached(self):
        port = self.conn.neutron.add_port(self.net, ['203.0.113.5'],
                                          tags=[pf.TAG])
        command, (labels, values) = self.run_cmd(cmd.DetachPortFloat,
                                                 [port.id])
        self.assertEqual(0, command.exit_status)
        self.assertIn('not attached', self.stderr.getvalue())
        self.assertIn('Detached From', labels)
