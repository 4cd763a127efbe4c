"""Issue 20 items 7 and 8: ``recover-all --dead`` evacuates only with
fencing evidence (the host forced down by someone else, ``--confirm-fenced
HOST``, or ``--fence-check CMD`` exiting 0), and disables the dead host
afterwards with a reason naming the evacuation (a host another admin
disabled is left as it is)."""

import io
import os
import shlex
import sys
import tempfile
from unittest import mock

import testtools

from osc_nodeops import errors
from osc_nodeops.ops import recover
from osc_nodeops.v1 import recover as v1_recover
from tests.unit.test_recover import RecoverNova
from tests.unit.test_recover import conn_for
from tests.unit.test_recover import run

# A fence check: exits with the status written in the file named by its
# first argument, after recording its argv and environment there too.
CHECK = '''
import json, os, sys
out, rc = sys.argv[1], int(open(sys.argv[1] + ".rc").read())
json.dump({"argv": sys.argv[2:], "env": dict(os.environ)}, open(out, "w"))
sys.exit(rc)
'''


class FenceCheckFixture(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.dir = tempfile.mkdtemp()
        self.addCleanup(__import__('shutil').rmtree, self.dir, True)
        self.script = os.path.join(self.dir, 'check.py')
        with open(self.script, 'w') as f:
            f.write(CHECK)
        self.out = os.path.join(self.dir, 'seen.json')

    def fence_check(self, rc, args='{host}'):
        with open(self.out + '.rc', 'w') as f:
            f.write(str(rc))
        return '%s %s %s %s' % (shlex.quote(sys.executable),
                                shlex.quote(self.script),
                                shlex.quote(self.out), args)

    def seen(self):
        import json
        with open(self.out) as f:
            return json.load(f)


class TestFencingEvidence(FenceCheckFixture):

    def setUp(self):
        super().setUp()
        self.nova = RecoverNova()
        self.a = self.nova.add('a', host='c03')
        self.nova.services['c03'].state = 'down'

    def assert_nothing_changed(self):
        self.assertEqual([], self.nova.calls)
        self.assertFalse(self.nova.compute.evacuate_server.called)
        self.assertFalse(self.nova.compute.update_service_forced_down.called)
        self.assertFalse(self.nova.compute.disable_service.called)
        self.assertEqual('c03', self.nova.servers[self.a.id].compute_host)

    def test_down_without_evidence_is_refused(self):
        exc = self.assertRaises(errors.Refused, run, self.nova, 'c03',
                                dead=True)
        msg = str(exc)
        self.assertEqual(1, len(msg.splitlines()))
        self.assertIn('no fencing evidence', msg)
        self.assertIn('--confirm-fenced c03', msg)
        self.assertIn('--fence-check', msg)
        self.assert_nothing_changed()

    def test_dry_run_without_evidence_is_refused_too(self):
        self.assertRaises(errors.Refused, run, self.nova, 'c03', dead=True,
                          dry_run=True)
        self.assert_nothing_changed()

    def test_confirm_fenced_alone_is_evidence_for_a_down_host(self):
        report, events = run(self.nova, 'c03', dead=True,
                             confirm_fenced='c03')
        self.assertTrue(report.ok, [i.row() for i in report.items])
        self.assertEqual('c02', self.nova.servers[self.a.id].compute_host)
        self.assertIn('confirmed by the operator (--confirm-fenced c03)',
                      ' '.join(report.notes))

    def test_forced_down_by_someone_else_is_evidence(self):
        self.nova.services['c03'].is_forced_down = True
        report, _ = run(self.nova, 'c03', dead=True)
        self.assertTrue(report.ok, [i.row() for i in report.items])
        self.assertEqual('c02', self.nova.servers[self.a.id].compute_host)
        self.assertIn('forced down by someone else', ' '.join(report.notes))
        self.assertFalse(self.nova.compute.update_service_forced_down.called)

    def test_fence_check_exit_0_is_evidence(self):
        with mock.patch.dict(os.environ, {'OS_PASSWORD': 'TopS3cret',
                                          'OS_AUTH_TOKEN': 'gAAAAtoken'}):
            report, _ = run(self.nova, 'c03', dead=True,
                            fence_check=self.fence_check(0))
        self.assertTrue(report.ok, [i.row() for i in report.items])
        self.assertEqual('c02', self.nova.servers[self.a.id].compute_host)
        seen = self.seen()
        self.assertEqual(['c03'], seen['argv'])
        # an explicit minimal environment: nothing of ours, no OS_*
        self.assertEqual([], [k for k in seen['env'] if k.startswith('OS_')])
        self.assertNotIn('TopS3cret', str(seen['env']))
        self.assertIn('--fence-check exited 0', ' '.join(report.notes))

    def test_fence_check_failing_refuses(self):
        exc = self.assertRaises(errors.Refused, run, self.nova, 'c03',
                                dead=True, fence_check=self.fence_check(1))
        self.assertIn('exited 1', str(exc))
        self.assertIn('nothing was changed', str(exc))
        self.assert_nothing_changed()

    def test_fence_check_failing_wins_over_confirm_and_forced_down(self):
        self.nova.services['c03'].is_forced_down = True
        self.assertRaises(errors.Refused, run, self.nova, 'c03', dead=True,
                          confirm_fenced='c03',
                          fence_check=self.fence_check(3))
        self.assert_nothing_changed()

    def test_fence_check_timeout_refuses(self):
        check = '%s -c %s {host}' % (
            shlex.quote(sys.executable),
            shlex.quote('import time; time.sleep(30)'))
        exc = self.assertRaises(errors.Refused, run, self.nova, 'c03',
                                dead=True, fence_check=check,
                                fence_timeout=0.5)
        self.assertIn('did not answer within', str(exc))
        self.assert_nothing_changed()

    def test_fence_check_missing_command_refuses(self):
        exc = self.assertRaises(errors.Refused, run, self.nova, 'c03',
                                dead=True,
                                fence_check='/nonexistent/ipmi-off {host}')
        self.assertIn('/nonexistent/ipmi-off', str(exc))
        self.assert_nothing_changed()

    def test_host_is_one_argv_element_never_a_shell(self):
        host = 'c03'
        check = self.fence_check(0, args="'--host={host}' ';' '$(id)'")
        self.nova.services[host].state = 'down'
        run(self.nova, host, dead=True, fence_check=check)
        self.assertEqual(['--host=c03', ';', '$(id)'], self.seen()['argv'])

    def test_force_down_with_fence_check(self):
        self.nova.services['c03'].state = 'up'
        report, _ = run(self.nova, 'c03', dead=True, force_down=True,
                        fence_check=self.fence_check(0))
        self.assertTrue(report.ok, [i.row() for i in report.items])
        self.nova.compute.update_service_forced_down.assert_called_once()

    def test_usage_errors_before_any_cloud_call(self):
        for kw, text in (
                ({'confirm_fenced': 'c02'}, "names 'c02'"),
                ({'fence_check': 'ipmi-status'}, '{host}'),
                ({'fence_check': "ipmi 'unbalanced {host}"}, 'quotation'),
                ({'fence_check': '{host} status'}, 'the command'),
                ({'fence_check': ''}, 'empty'),
                ({'force_down': True}, '--confirm-fenced c03')):
            exc = self.assertRaises(errors.UsageError, recover.validate,
                                    recover.Options(dead=True, **kw), 'c03')
            self.assertIn(text, str(exc))
        self.assertRaises(errors.UsageError, recover.validate,
                          recover.Options(fence_check='x {host}'), 'c03')


class TestDisableAfterEvacuation(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.nova = RecoverNova()
        self.a = self.nova.add('a', host='c03')
        self.nova.services['c03'].state = 'down'

    def host_row(self, report):
        [item] = [i for i in report.items if i.method == 'disable-host']
        return item

    def test_dead_host_disabled_with_reason_and_way_back(self):
        report, events = run(self.nova, 'c03', dead=True,
                             confirm_fenced='c03')
        svc = self.nova.services['c03']
        self.assertEqual('disabled', svc.status)
        self.assertIn('recover-all --dead', svc.disabled_reason)
        self.assertIn('evacuat', svc.disabled_reason)
        item = self.host_row(report)
        self.assertEqual(('c03', 'disabled'), (item.id, item.result))
        self.assertIn('openstack compute service set --enable c03 '
                      'nova-compute', item.full_message())
        self.assertNotIn('--up', item.full_message())
        self.assertTrue(item.ok)
        self.assertTrue(report.ok)
        said = ' '.join(e.message for e in events)
        self.assertIn('openstack compute service set --enable c03', said)
        # disabled before the first evacuation (as Masakari does)
        names = [c[0] for c in self.nova.compute.method_calls
                 if c[0] in ('disable_service', 'evacuate_server')]
        self.assertEqual('disable_service', names[0])

    def test_forced_down_by_this_run_says_how_to_bring_it_up(self):
        self.nova.services['c03'].state = 'up'
        report, _ = run(self.nova, 'c03', dead=True, force_down=True,
                        confirm_fenced='c03')
        message = self.host_row(report).full_message()
        self.assertIn('openstack compute service set --up c03 nova-compute',
                      message)
        self.assertIn('openstack compute service set --enable c03 '
                      'nova-compute', message)

    def test_another_admins_disable_is_left_alone(self):
        svc = self.nova.services['c03']
        svc.status, svc.disabled_reason = 'disabled', 'RMA: bad DIMM'
        report, _ = run(self.nova, 'c03', dead=True, confirm_fenced='c03')
        self.assertEqual(('disabled', 'RMA: bad DIMM'),
                         (svc.status, svc.disabled_reason))
        self.assertFalse(self.nova.compute.disable_service.called)
        self.assertFalse(self.nova.compute.enable_service.called)
        item = self.host_row(report)
        self.assertEqual('skipped', item.result)
        self.assertIn('already disabled', item.full_message())
        self.assertNotIn('--enable', item.full_message())
        self.assertTrue(report.ok)

    def test_dry_run_only_says_it_would(self):
        report, _ = run(self.nova, 'c03', dead=True, confirm_fenced='c03',
                        dry_run=True)
        self.assertEqual('enabled', self.nova.services['c03'].status)
        self.assertFalse(self.nova.compute.disable_service.called)
        item = self.host_row(report)
        self.assertEqual('planned', item.result)
        self.assertIn('would disable', item.full_message())

    def test_reboot_mode_does_not_disable(self):
        nova = RecoverNova()
        nova.add('a', power_state=0)
        report, _ = run(nova, 'c01')
        self.assertEqual([], [i for i in report.items
                              if i.method == 'disable-host'])
        self.assertFalse(nova.compute.disable_service.called)


class TestCommandFencing(FenceCheckFixture):

    def _cmd(self, nova):
        app = mock.Mock()
        app.stderr = io.StringIO()
        app.stdout = io.StringIO()
        app.client_manager.sdk_connection = conn_for(nova)
        return v1_recover.RecoverAll(app, None), app

    def test_refusal_without_evidence_is_one_line_exit_1(self):
        nova = RecoverNova()
        nova.services['c03'].state = 'down'
        s = nova.add('a', host='c03')
        cmd, app = self._cmd(nova)
        args = cmd.get_parser('recover-all').parse_args(['c03', '--dead'])
        self.assertEqual(1, cmd.run(args))
        err = app.stderr.getvalue()
        self.assertEqual(1, len(err.splitlines()), err)
        self.assertIn('no fencing evidence', err)
        self.assertEqual('', app.stdout.getvalue())
        self.assertEqual('c03', nova.servers[s.id].compute_host)
        self.assertFalse(nova.compute.disable_service.called)

    def test_usage_errors_exit_2_before_any_cloud_call(self):
        for argv in (['c03', '--dead', '--confirm-fenced', 'c02'],
                     ['c03', '--dead', '--fence-check', 'ipmi-status'],
                     ['c03', '--fence-check', 'x {host}']):
            nova = RecoverNova()
            cmd, app = self._cmd(nova)
            args = cmd.get_parser('recover-all').parse_args(argv)
            self.assertEqual(2, cmd.run(args), argv)
            err = app.stderr.getvalue()
            self.assertEqual(1, len(err.splitlines()), err)
            self.assertEqual([], nova.compute.method_calls, argv)

    def test_fence_check_option(self):
        nova = RecoverNova()
        nova.services['c03'].state = 'down'
        s = nova.add('a', host='c03')
        cmd, app = self._cmd(nova)
        args = cmd.get_parser('recover-all').parse_args(
            ['c03', '--dead', '--fence-check', self.fence_check(0),
             '--fence-timeout', '20', '--dry-run'])
        self.assertEqual(0, cmd.run(args), app.stderr.getvalue())
        self.assertEqual(['c03'], self.seen()['argv'])
        self.assertEqual('c03', nova.servers[s.id].compute_host)
        self.assertIn('--fence-check exited 0', app.stderr.getvalue())
