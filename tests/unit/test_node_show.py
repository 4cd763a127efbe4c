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
        # waiting for its confirmation: moves nothing, not "in progress"
        self.nova.add_migration(moving.id, status='finished', dest='c03')
        self.nova.add('elsewhere', host='c02')

    def test_fields(self):
        info = node_show.gather(self.nova.compute, 'c01', now=NOW)
        self.assertEqual('c01', info['Host'])
        self.assertEqual('disabled', info['Status'])
        self.assertEqual('up', info['State'])
        self.assertEqual('disk swap', info['Disabled Reason'])
        self.assertFalse(info['Forced Down'])
        self.assertEqual('2026-01-01T00:00:00Z', info['Last Heartbeat'])
        self.assertEqual(30, info['Heartbeat Age Seconds'])
        self.assertEqual(('c01', 'up', 'enabled'), (
            info['Hypervisor'], info['Hypervisor State'],
            info['Hypervisor Status']))
        self.assertEqual(4, info['Instances'])
        self.assertEqual(3, info['Running Instances'])
        self.assertEqual({'ACTIVE': 3, 'SHUTOFF': 1},
                         info['Instances By Status'])
        [line] = info['Migrations In Progress']
        self.assertIn('c01->c02 running', line)
        self.assertEqual(['a', 'b', 'm', 'off'],
                         [s['name'] for s in info['Servers']])
        self.assertEqual({'name', 'id', 'status', 'project_id'},
                         set(info['Servers'][0]))
        self.assertEqual('SHUTOFF', info['Servers'][3]['status'])

    def test_field_names_are_shell_identifiers(self):
        # cliff's -f shell lowercases and turns ' ', ':' and '-' into '_'
        import re
        info = node_show.gather(self.nova.compute, 'c01', now=NOW)
        for name in info:
            var = name.lower().replace(' ', '_').replace(':', '_').replace(
                '-', '_')
            self.assertTrue(re.match(r'^[a-z_][a-z0-9_]*$', var), name)

    def test_shell_output_evals_and_runs_nothing_a_tenant_named(self):
        import os
        import subprocess
        import tempfile
        flag = os.path.join(tempfile.mkdtemp(), 'ran')
        self.addCleanup(lambda: os.path.exists(flag) and os.unlink(flag))
        evil = '$(touch %s)`touch %s`\\"' % (flag, flag)
        self.nova.add(evil)
        app = FakeApp(self.nova)
        cmd = node.ShowNode(app, None)
        args = cmd.get_parser('show').parse_args(['c01', '-f', 'shell'])
        self.assertEqual(0, cmd.run(args))
        out = app.stdout.getvalue()
        self.assertIn('instances_by_status="ACTIVE=\'4\', SHUTOFF=\'1\'"',
                      out)
        res = subprocess.run(
            ['sh', '-c', out + '\nprintf %s "$servers"'],
            capture_output=True, text=True, check=True)
        self.assertFalse(os.path.exists(flag))
        self.assertIn("name='%s'" % evil, res.stdout)

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


class TestShowAudit(testtools.TestCase):
    """``--audit``: the post-drain audit on its own (issue 12 item 5)."""

    def run_show(self, nova, extra=None, *argv):
        from unittest import mock
        app = FakeApp(nova)
        cloud = app.client_manager.sdk_connection
        cloud.extra = extra or {}
        cmd = node.ShowNode(app, None)
        args = cmd.get_parser('show').parse_args(list(argv) + ['-f', 'json'])
        with mock.patch('time.sleep'):
            rc = cmd.run(args)
        return rc, json.loads(app.stdout.getvalue())

    def test_clean_host(self):
        nova = fakes.FakeNova()
        nova.add('elsewhere', host='c02')
        rc, out = self.run_show(nova, None, 'c01', '--audit')
        self.assertEqual(0, rc)
        self.assertIs(True, out['Audit Clean'])
        self.assertEqual([], out['Audit Findings'])
        self.assertIn('placement', out['Audit Sources'])

    def test_leftovers_exit_1_with_their_commands(self):
        nova = fakes.FakeNova()
        srv = nova.add('a')
        ghost = '0b2c4f7e-0000-4000-8000-000000000001'
        rc, out = self.run_show(nova, {'c01': {ghost: {'MEMORY_MB': 1}}},
                                   'c01', '--audit')
        self.assertEqual(1, rc)
        self.assertIs(False, out['Audit Clean'])
        found = {f['code']: f for f in out['Audit Findings']}
        self.assertEqual(srv.id, found['server-on-host']['server_id'])
        self.assertEqual('openstack resource provider allocation delete %s'
                         % ghost, found['orphan-allocation']['command'])

    def test_without_audit_no_audit_fields(self):
        nova = fakes.FakeNova()
        rc, out = self.run_show(nova, None, 'c01')
        self.assertEqual(0, rc)
        self.assertNotIn('Audit Clean', out)


class TestShowCheck(testtools.TestCase):
    """``--require-up``: exit 1 unless nova-compute is up with a fresh
    heartbeat; the fields are printed either way (issue 23 item 7)."""

    def run_show(self, nova, *argv):
        app = FakeApp(nova)
        cmd = node.ShowNode(app, None)
        args = cmd.get_parser('show').parse_args(list(argv) + ['-f', 'json'])
        rc = cmd.run(args)
        return rc, json.loads(app.stdout.getvalue() or 'null'), \
            app.stderr.getvalue()

    def fresh(self, nova, host='c01', age=5):
        from osc_nodeops import timeutil
        nova.services[host].updated_at = timeutil.api_time(
            timeutil.utcnow() - datetime.timedelta(seconds=age))

    def test_up_and_fresh_exits_0(self):
        nova = fakes.FakeNova()
        self.fresh(nova)
        rc, out, err = self.run_show(nova, 'c01', '--require-up')
        self.assertEqual((0, ''), (rc, err))
        self.assertEqual('up', out['State'])

    def test_disabled_but_up_exits_0(self):
        nova = fakes.FakeNova()
        self.fresh(nova)
        nova.services['c01'].status = 'disabled'
        self.assertEqual(0, self.run_show(nova, 'c01', '--require-up')[0])

    def test_down_exits_1_with_the_row_and_one_line(self):
        nova = fakes.FakeNova()
        self.fresh(nova, age=300)
        nova.services['c01'].state = 'down'
        rc, out, err = self.run_show(nova, 'c01', '--require-up')
        self.assertEqual(1, rc)
        self.assertEqual('down', out['State'])   # the row is printed
        self.assertEqual(1, len(err.splitlines()))
        self.assertIn('check failed: nova-compute on c01 is down', err)
        # Without --require-up: exit 0, as before.
        self.assertEqual((0, ''), self.run_show(nova, 'c01')[::2])

    def test_stale_heartbeat_and_forced_down_exit_1(self):
        nova = fakes.FakeNova()
        self.fresh(nova, age=node_show.FRESH_HEARTBEAT + 30)
        rc, _out, err = self.run_show(nova, 'c01', '--require-up')
        self.assertEqual(1, rc)
        self.assertIn('last heartbeat', err)
        self.fresh(nova)
        nova.services['c01'].is_forced_down = True
        rc, _out, err = self.run_show(nova, 'c01', '--require-up')
        self.assertEqual(1, rc)
        self.assertIn('forced down', err)

    def test_local_not_connected_exits_1(self):
        from unittest import mock

        from osc_nodeops.ops import local_service
        nova = fakes.FakeNova()
        self.fresh(nova)
        fields = [('Local Process', 'nova-compute not running'),
                  ('Local AMQP', 'no "Connected to AMQP server" line')]
        with mock.patch.object(local_service, 'local_report',
                               return_value=(fields, False)):
            rc, out, err = self.run_show(nova, 'c01', '--local',
                                         '--require-up')
        self.assertEqual(1, rc)
        self.assertFalse(out['Local OK'])
        self.assertIn('nova-compute not running', err)
        with mock.patch.object(local_service, 'local_report',
                               return_value=(fields, True)):
            self.assertEqual(0, self.run_show(
                nova, 'c01', '--local', '--require-up')[0])

    def test_help_says_the_threshold(self):
        cmd = node.ShowNode(FakeApp(fakes.FakeNova()), None)
        self.assertIn('%d s old' % node_show.FRESH_HEARTBEAT,
                      cmd.get_parser('show').format_help())
