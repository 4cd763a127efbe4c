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
        self.assertEqual('203.0.113.9, 2001:db8::1',
                         row['Addresses'].human_readable())
        self.assertEqual(['203.0.113.9', '2001:db8::1'],
                         row['Addresses'].machine_readable())
        self.assertEqual([pf.TAG], row['Tags'].machine_readable())
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
                          'Server Name', 'Binding Host', 'Status', 'Tags'),
                         labels)
        self.assertEqual(1, len(rows))
        self.assertEqual('203.0.113.5', rows[0][3].human_readable())

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


class TestTypedOutput(CliBase):
    """Issue 23 item 5: lists stay lists in ``-f json`` (as ``openstack
    port show`` gives them), shown forms under ``-f value`` and ``-f csv``
    (no Python repr), one "nothing": empty in text, null in JSON."""

    def output(self, klass, argv):
        import json as _json
        command = klass(self.app, None)
        self.app.stdout = io.StringIO()
        args = command.get_parser('openstack port float').parse_args(argv)
        self.assertEqual(0, command.run(args), self.stderr.getvalue())
        text = self.app.stdout.getvalue()
        return _json.loads(text) if '-f' in argv and argv[
            argv.index('-f') + 1] == 'json' else text

    def setUp(self):
        super(TestTypedOutput, self).setUp()
        self.port = self.conn.neutron.add_port(
            self.net, ['203.0.113.5', '2001:db8::5'],
            tags=[pf.TAG, 'web'], name='www.example.com')

    def test_list_json_gives_lists(self):
        [row] = self.output(cmd.ListPortFloat, ['-f', 'json'])
        self.assertEqual(['203.0.113.5', '2001:db8::5'], row['Addresses'])
        self.assertEqual(sorted([pf.TAG, 'web']), row['Tags'])
        self.assertIsNone(row['Server ID'])     # nothing: null
        self.assertIsNone(row['Binding Host'])

    def test_list_value_and_csv_are_plain(self):
        text = self.output(cmd.ListPortFloat, ['-f', 'value', '-c',
                                               'Addresses', '-c', 'Tags',
                                               '-c', 'Server ID'])
        # (cliff keeps the command's column order: Server ID is empty)
        self.assertEqual('203.0.113.5, 2001:db8::5  %s, web\n' % pf.TAG,
                         text)
        self.assertNotIn('[', text)
        self.assertNotIn('None', text)
        text = self.output(cmd.ListPortFloat, ['-f', 'csv', '-c',
                                               'Addresses', '-c',
                                               'Server ID'])
        self.assertEqual(['"Addresses","Server ID"',
                          '"203.0.113.5, 2001:db8::5",""'],
                         text.splitlines())

    def test_list_table_shows_nothing_as_empty(self):
        text = self.output(cmd.ListPortFloat, ['-c', 'Name', '-c',
                                               'Server ID'])
        self.assertNotIn('None', text)
        self.assertIn('www.example.com', text)

    def test_show_json_gives_lists_and_null(self):
        out = self.output(cmd.DetachPortFloat, [self.port.id, '-f', 'json'])
        self.assertEqual(['203.0.113.5', '2001:db8::5'], out['Addresses'])
        self.assertEqual(sorted([pf.TAG, 'web']), out['Tags'])
        self.assertIsNone(out['Server ID'])

    def test_show_value_and_shell_are_plain(self):
        text = self.output(cmd.DetachPortFloat, [
            self.port.id, '-f', 'value', '-c', 'Addresses', '-c', 'Tags',
            '-c', 'Server ID'])
        self.assertEqual(['203.0.113.5, 2001:db8::5', '',
                          '%s, web' % pf.TAG], text.splitlines())
        text = self.output(cmd.DetachPortFloat, [
            self.port.id, '-f', 'shell', '-c', 'Addresses', '-c',
            'Server ID'])
        self.assertIn('addresses="203.0.113.5, 2001:db8::5"', text)
        self.assertIn('server_id=""', text)
