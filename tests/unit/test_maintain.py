"""``compute node maintain``: waves, budget, steps, failures, resume."""

import contextlib
import json
import os
from unittest import mock

import fixtures
import testtools

from osc_nodeops import errors
from osc_nodeops.ops import drain
from osc_nodeops.ops import maintain
from osc_nodeops.ops.drain import services as drain_services
from osc_nodeops.privileged import operator_step
from tests.unit import fakes

FUTURE = '2099-01-01T00:00:00.000000'
FLAVOR_3000 = {'vcpus': 1, 'ram': 3000, 'disk': 1, 'ephemeral': 0, 'swap': 0,
               'extra_specs': {}, 'original_name': 'f'}


def request(tmp, **kw):
    kw.setdefault('drain_options', drain.Options(
        poll_interval=0.01, retry_delay=0.01, timeout=30))
    kw.setdefault('state_file', os.path.join(tmp, 'state.json'))
    kw.setdefault('poll_interval', 0.01)
    kw.setdefault('up_timeout', 2)
    return maintain.Request(**kw)


def one_owner():
    """maintain (``drain.lease_owner``) and its drains and undrains (they
    look it up in ``ops/drain/services.py``) take leases as one owner."""
    stack = contextlib.ExitStack()
    for where in (drain, drain_services):
        stack.enter_context(mock.patch.object(
            where, 'lease_owner', lambda conn=None: 'op@test:1'))
    return stack


class TestMaintain(testtools.TestCase):

    def setUp(self):
        super(TestMaintain, self).setUp()
        self.tmp = self.useFixture(fixtures.TempDir()).path
        self.nova = fakes.FakeNova(hosts=('c01', 'c02', 'c03', 'c04'),
                                   default_dest='c04')
        for svc in self.nova.services.values():
            svc.updated_at = FUTURE  # every heartbeat is fresh
        self.nova.add('a1', host='c01')
        self.nova.add('a2', host='c01')
        self.nova.add('b1', host='c02')
        self.disabled_max = 0
        real = self.nova.compute.disable_service.side_effect

        def disable(*a, **kw):
            out = real(*a, **kw)
            self.disabled_max = max(self.disabled_max, sum(
                1 for s in self.nova.services.values()
                if s.status == 'disabled'))
            return out
        self.nova.compute.disable_service.side_effect = disable
        self.seen = []

    def run_it(self, **kw):
        req = request(self.tmp, **kw)
        with one_owner():
            return maintain.run(fakes.FakeCloud(self.nova), req,
                                events=self.seen.append)

    def marker(self, name):
        return os.path.join(self.tmp, name)

    def test_cycles_fewest_first_and_migrates_back(self):
        log = self.marker('exec.log')
        report = self.run_it(hosts=('c01', 'c02', 'c03'),
                             exec_cmd='echo {host} >> %s' % log,
                             migrate_back=True)
        self.assertTrue(report.ok, [h.row() for h in report.hosts])
        self.assertEqual(['c03', 'c02', 'c01'],
                         [h.host for h in report.hosts])
        with open(log) as f:
            self.assertEqual(['c03', 'c02', 'c01'], f.read().split())
        self.assertEqual(1, self.disabled_max)
        self.assertEqual(1, report.max_out_of_service)
        self.assertEqual(['c01', 'c01', 'c02'], sorted(
            s.compute_host for s in self.nova.servers.values()))
        self.assertTrue(all(s.status == 'enabled'
                            for s in self.nova.services.values()))
        self.assertEqual([0, 1, 2], [h.moved_back for h in report.hosts])

    def test_waves_of_two_count_hosts_disabled_by_others(self):
        self.nova.services['c04'].status = 'disabled'
        self.nova.services['c04'].disabled_reason = 'broken fan'
        self.nova.default_dest = 'c03'
        report = self.run_it(hosts=('c01', 'c02'), max_hosts=2)
        # c04 is out already: one host at a time is left.
        self.assertTrue(report.ok)
        self.assertEqual([1, 2], [h.wave for h in report.hosts])
        self.assertEqual(2, self.disabled_max)
        self.assertEqual('disabled', self.nova.services['c04'].status)

    def test_no_room_refuses(self):
        for h in ('c03', 'c04'):
            self.nova.services[h].status = 'disabled'
        report = self.run_it(hosts=('c01',), max_hosts=2)
        self.assertFalse(report.ok)
        self.assertIn('out of service already', report.hosts[0].message)
        self.assertEqual('enabled', self.nova.services['c01'].status)

    def test_a_misfit_with_allow_skipped_says_it_does_not_fit(self):
        # With --allow-skipped a server that would stay is no reason to
        # refuse: a wave refused because another server does not fit
        # says so, not "would stay ... --allow-skipped".
        self.nova.servers.clear()
        self.nova.add('a', host='c01', flavor=FLAVOR_3000)
        self.nova.add('b', host='c02', flavor=FLAVOR_3000)
        self.nova.add('broken', host='c01', status='ERROR')
        self.nova.services['c04'].status = 'disabled'
        self.nova.services['c04'].disabled_reason = 'broken fan'
        cloud = fakes.FakeCloud(self.nova, size={
            'VCPU': 8, 'MEMORY_MB': 4096, 'DISK_GB': 100})
        req = request(self.tmp, hosts=('c01', 'c02'), max_hosts=3,
                      exec_cmd='true', drain_options=drain.Options(
                          poll_interval=0.01, retry_delay=0.01, timeout=30,
                          allow_skipped=True))
        with one_owner():
            report = maintain.run(cloud, req, events=self.seen.append)
        rows = {h.host: h for h in report.hosts}
        for h in ('c01', 'c02'):
            self.assertEqual('refused', rows[h].steps['drain'])
            self.assertIn('would not fit', rows[h].message)
        self.nova.compute.live_migrate_server.assert_not_called()

    def test_wave_that_does_not_fit_is_refused_untouched(self):
        # Each wave is checked against the hosts still in service: c04 is
        # disabled by someone else, c01 and c02 are the wave, so only c03
        # may take their servers, and two 3000 MB servers do not fit its
        # 4096 MB.  Nothing moves, both stay enabled, the step never runs.
        self.nova.servers.clear()
        self.nova.add('a', host='c01', flavor=FLAVOR_3000)
        self.nova.add('b', host='c02', flavor=FLAVOR_3000)
        self.nova.services['c04'].status = 'disabled'
        self.nova.services['c04'].disabled_reason = 'broken fan'
        self.nova.default_dest = 'c03'
        cloud = fakes.FakeCloud(self.nova, size={
            'VCPU': 8, 'MEMORY_MB': 4096, 'DISK_GB': 100})
        log = self.marker('exec.log')
        req = request(self.tmp, hosts=('c01', 'c02'), max_hosts=3,
                      exec_cmd='echo {host} >> %s' % log)
        with one_owner():
            report = maintain.run(cloud, req, events=self.seen.append)
        self.assertFalse(report.ok)
        rows = {h.host: h for h in report.hosts}
        for h in ('c01', 'c02'):
            self.assertEqual('failed', rows[h].result)
            self.assertEqual('refused', rows[h].steps['drain'])
            self.assertIn('would not fit', rows[h].message)
            self.assertEqual('enabled', self.nova.services[h].status)
        self.nova.compute.disable_service.assert_not_called()
        self.nova.compute.live_migrate_server.assert_not_called()
        self.assertFalse(os.path.exists(log))
        self.assertEqual(['c01', 'c02'], sorted(
            s.compute_host for s in self.nova.servers.values()))
        failed = [e for e in self.seen if e.kind == 'failed']
        self.assertEqual(['c01', 'c02'], sorted(e.host for e in failed))

    def test_wave_that_fits_goes_on(self):
        # The same servers with c04 in service: one lands on each of c03
        # and c04, the pre-flight passes and both hosts are cycled.
        self.nova.servers.clear()
        self.nova.add('a', host='c01', flavor=FLAVOR_3000)
        self.nova.add('b', host='c02', flavor=FLAVOR_3000)
        cloud = fakes.FakeCloud(self.nova, size={
            'VCPU': 8, 'MEMORY_MB': 4096, 'DISK_GB': 100})
        req = request(self.tmp, hosts=('c01', 'c02'), max_hosts=2)
        with one_owner():
            report = maintain.run(cloud, req, events=self.seen.append)
        self.assertTrue(report.ok, [h.row() for h in report.hosts])

    def test_failing_exec_stops_with_the_host_disabled(self):
        report = self.run_it(hosts=('c03', 'c02', 'c01'), order='given',
                             exec_cmd='test {host} != c02')
        self.assertFalse(report.ok)
        rows = {h.host: h for h in report.hosts}
        self.assertEqual('done', rows['c03'].result)
        self.assertEqual('failed', rows['c02'].result)
        self.assertIn('exec failed: exit 1', rows['c02'].message)
        self.assertEqual('not-started', rows['c01'].result)
        svc = self.nova.services['c02']
        self.assertEqual('disabled', svc.status)
        self.assertIn('exec failed', svc.disabled_reason)
        self.assertEqual('enabled', self.nova.services['c01'].status)
        # not drained (c02's server may have landed there)
        self.assertLessEqual({'a1', 'a2'},
                             {s.name for s in self.nova.on('c01')})

    def test_keep_going(self):
        report = self.run_it(hosts=('c03', 'c02', 'c01'), order='given',
                             exec_cmd='test {host} != c02', keep_going=True,
                             max_hosts=2)
        self.assertFalse(report.ok)
        self.assertEqual(['done', 'failed', 'done'],
                         [h.result for h in report.hosts])
        self.assertEqual([1, 1, 2], [h.wave for h in report.hosts])
        self.assertEqual(2, self.disabled_max)

    def test_keep_going_within_the_budget(self):
        # The failed host stays out of service: with K=1 nothing is left.
        report = self.run_it(hosts=('c02', 'c01'), order='given',
                             exec_cmd='false', keep_going=True)
        self.assertEqual(['failed', 'not-started'],
                         [h.result for h in report.hosts])
        self.assertIn('out of service already (c02)',
                      report.hosts[1].message)
        self.assertEqual(1, self.disabled_max)

    def test_rerun_skips_finished_exec(self):
        log = self.marker('exec.log')
        cmd = 'echo {host} >> %s; test {host} != c02 -o -e %s' % (
            log, self.marker('fixed'))
        first = self.run_it(hosts=('c03', 'c02'), order='given',
                            exec_cmd=cmd)
        self.assertFalse(first.ok)
        open(self.marker('fixed'), 'w').close()
        second = self.run_it(hosts=('c03', 'c02'), order='given',
                             exec_cmd=cmd)
        self.assertTrue(second.ok, [h.row() for h in second.hosts])
        with open(log) as f:
            self.assertEqual(['c03', 'c02', 'c02'], f.read().split())
        self.assertIn('earlier run', second.hosts[0].message)
        with open(self.marker('state.json')) as f:
            state = json.load(f)
        self.assertEqual(set(maintain.STEPS) - {'check'},
                         set(state['hosts']['c02']))

    def test_rerun_without_state_file_reads_the_reason(self):
        log = self.marker('exec.log')
        # The step succeeds, the wait does not: the host is left disabled,
        # its reason saying that drain and exec are done.
        self.nova.services['c03'].updated_at = '2020-01-01T00:00:00'
        first = self.run_it(hosts=('c03',), exec_cmd='echo {host} >> %s'
                            % log, state_file=None, up_timeout=0.3)
        self.assertFalse(first.ok)
        reason = self.nova.services['c03'].disabled_reason
        self.assertTrue(reason.startswith('maintain done=drain,exec: '),
                        reason)
        self.nova.services['c03'].updated_at = FUTURE
        second = self.run_it(hosts=('c03',), exec_cmd='echo {host} >> %s'
                             % log, state_file=None)
        self.assertTrue(second.ok, [h.row() for h in second.hosts])
        with open(log) as f:
            self.assertEqual(['c03'], f.read().split())
        self.assertEqual('enabled', self.nova.services['c03'].status)

    def test_a_failing_host_lets_its_wave_mate_finish(self):
        # Issue 24 item 3: each host's failure is its own; the run stops
        # before the next wave.
        report = self.run_it(hosts=('c02', 'c03', 'c01'), order='given',
                             max_hosts=2, exec_cmd='test {host} != c02')
        self.assertEqual(['failed', 'done', 'not-started'],
                         [h.result for h in report.hosts])
        self.assertEqual([1, 1, None], [h.wave for h in report.hosts])
        self.assertIn('exec failed', self.nova.services['c02'].disabled_reason)
        self.assertEqual('enabled', self.nova.services['c03'].status)
        self.assertEqual('enabled', self.nova.services['c01'].status)

    def test_wait_needs_a_heartbeat_after_the_step(self):
        self.nova.services['c03'].updated_at = '2020-01-01T00:00:00'
        report = self.run_it(hosts=('c03',), exec_cmd='true', up_timeout=0.3)
        self.assertFalse(report.ok)
        self.assertIn('wait failed', report.hosts[0].message)
        self.assertEqual('disabled', self.nova.services['c03'].status)

    def test_wait_goes_on_when_the_host_is_not_listed(self):
        # Issue 20 item 3: while a host reboots its service may be missing
        # from the list for a while; the wait goes on (it caught a
        # drain.UnknownHost that no longer exists: AttributeError).
        real = self.nova.compute.services.side_effect
        gaps = {'n': 0}

        def waiting():
            return 'waiting for nova-compute' in (
                self.nova.services['c03'].disabled_reason or '')

        def services(host=None, binary=None, **kw):
            if host == 'c03' and waiting() and gaps['n'] < 2:
                gaps['n'] += 1
                return iter([])
            return real(host=host, binary=binary, **kw)
        self.nova.compute.services.side_effect = services
        report = self.run_it(hosts=('c03',), exec_cmd='true')
        self.assertTrue(report.ok, [h.row() for h in report.hosts])
        self.assertEqual(2, gaps['n'])
        self.assertEqual('enabled', self.nova.services['c03'].status)

    def test_an_unexpected_error_keeps_the_rows(self):
        # Any other error of a host's cycle is that host's row (failed,
        # the host held disabled with the step named), not a traceback.
        real = self.nova.compute.services.side_effect
        calls = {'n': 0}

        def waiting():
            return 'waiting for nova-compute' in (
                self.nova.services['c03'].disabled_reason or '')

        def services(host=None, binary=None, **kw):
            if host == 'c03' and waiting() and calls['n'] == 0:
                calls['n'] += 1
                raise fakes.http_error(403, 'policy does not allow')
            return real(host=host, binary=binary, **kw)
        self.nova.compute.services.side_effect = services
        report = self.run_it(hosts=('c03',), exec_cmd='true')
        self.assertFalse(report.ok)
        [row] = report.hosts
        self.assertEqual('failed', row.result)
        self.assertIn('wait failed', row.message)
        self.assertIn('policy does not allow', row.message)
        self.assertEqual('disabled', self.nova.services['c03'].status)

    def test_a_check_that_cannot_start_is_a_row(self):
        # Issue 21 item 8: a --check step's error escaped run() and lost
        # the table.
        def run(template, host, timeout, **kw):
            if template == 'CHECK':
                raise operator_step.StepError('cannot start the step')
            return 0, ''
        with mock.patch.object(operator_step, 'run', side_effect=run):
            report = self.run_it(hosts=('c03',), exec_cmd='true',
                                 check_cmd='CHECK')
        self.assertFalse(report.ok)
        [row] = report.hosts
        self.assertEqual('failed', row.result)
        self.assertEqual('failed', row.steps['check'])
        self.assertIn('check failed: cannot start the step', row.message)
        self.assertEqual('disabled', self.nova.services['c03'].status)

    def test_step_output_stays_out_of_the_service_reason(self):
        # Issue 21 item 4: the step inherited the whole environment and a
        # failing step's output was published in nova's disabled_reason.
        self.useFixture(fixtures.EnvironmentVariable('OS_PASSWORD',
                                                     'hunter2'))
        report = self.run_it(hosts=('c03',),
                             exec_cmd='echo "pw=[$OS_PASSWORD]"; exit 3')
        self.assertFalse(report.ok)
        [row] = report.hosts
        self.assertIn('exec failed: exit 3', row.message)
        self.assertIn('pw=[]', row.message)  # the row keeps the output
        self.assertNotIn('hunter2', row.message)
        reason = self.nova.services['c03'].disabled_reason
        self.assertIn('exec failed', reason)
        self.assertIn('exit 3', reason)
        self.assertNotIn('pw=', reason)
        failed = [e.message for e in self.seen if e.kind == 'failed']
        self.assertTrue(any('pw=[]' in m for m in failed), failed)

    def test_wave_with_a_server_it_would_skip_is_refused_untouched(self):
        # Issue 20 item 5: a SUSPENDED server (no --move-suspended) and an
        # ERROR one would stay on their hosts: the wave was drained of the
        # rest and left disabled.  Now it is refused before anything
        # changes, the row naming the server and what would allow it.
        log = self.marker('exec.log')
        self.nova.add('sleepy', host='c03', status='SUSPENDED')
        self.nova.add('broken', host='c02', status='ERROR')
        report = self.run_it(hosts=('c02', 'c03'), max_hosts=2,
                             exec_cmd='echo {host} >> %s' % log)
        self.assertFalse(report.ok)
        rows = {h.host: h for h in report.hosts}
        self.assertEqual('refused', rows['c03'].steps['drain'])
        self.assertIn('sleepy', rows['c03'].message)
        self.assertIn('--move-suspended', rows['c03'].message)
        self.assertIn('broken', rows['c02'].message)
        self.assertIn('--allow-skipped', rows['c02'].message)
        self.nova.compute.disable_service.assert_not_called()
        self.nova.compute.live_migrate_server.assert_not_called()
        self.assertFalse(os.path.exists(log))
        self.assertEqual('enabled', self.nova.services['c02'].status)
        self.assertEqual('enabled', self.nova.services['c03'].status)

    def test_a_wave_plans_each_host_twice(self):
        # Issue 24: a wave's hosts were planned three times, twice one
        # host after the other (maintain's check for servers that would
        # stay, then the drain's capacity pre-pass): now the one pre-pass
        # does both, then each host's own plan before its moves.
        planned = []
        real = drain.plan.plan_drain

        def plan_drain(ctx, snap, opts):
            planned.append(ctx.host)
            return real(ctx, snap, opts)
        self.useFixture(fixtures.MockPatchObject(drain.plan, 'plan_drain',
                                                 plan_drain))
        cloud = fakes.FakeCloud(self.nova)
        with one_owner():
            report = maintain.run(cloud, request(
                self.tmp, hosts=('c01', 'c02'), max_hosts=2,
                exec_cmd='true'), events=self.seen.append)
        self.assertTrue(report.ok, [h.row() for h in report.hosts])
        self.assertEqual({'c01': 2, 'c02': 2}, {
            h: planned.count(h) for h in set(planned)})
        # The candidates' room is read once by the pre-pass and once by
        # the wave's own plans (one pool for both hosts, as the pre-pass).
        got = sorted(g for g in cloud.gets if 'inventories' in g)
        self.assertEqual(['/resource_providers/rp-c03/inventories'] * 2 +
                         ['/resource_providers/rp-c04/inventories'] * 2, got)
        # (A server that would stay is refused by the pre-pass:
        # test_wave_with_a_server_it_would_skip_is_refused_untouched.)

    def test_move_suspended_and_allow_skipped(self):
        self.nova.add('sleepy', host='c03', status='SUSPENDED')
        report = self.run_it(hosts=('c03',), drain_options=drain.Options(
            poll_interval=0.01, retry_delay=0.01, timeout=30,
            move_suspended=True))
        self.assertTrue(report.ok, [h.row() for h in report.hosts])
        self.nova.add('broken', host='c02', status='ERROR')
        report = self.run_it(hosts=('c02',), drain_options=drain.Options(
            poll_interval=0.01, retry_delay=0.01, timeout=30,
            allow_skipped=True))
        self.assertTrue(report.ok, [h.row() for h in report.hosts])
        self.assertEqual(['broken'], [s.name for s in self.nova.on('c02')])
        self.assertEqual('enabled', self.nova.services['c02'].status)

    # -- issue 24 item 4: --dry-run, and drain's options

    def assert_nothing_changed(self, log):
        c = self.nova.compute
        for call in (c.disable_service, c.enable_service,
                     c.live_migrate_server, c.migrate_server,
                     c.create_aggregate, c.set_aggregate_metadata,
                     c.set_server_metadata):
            call.assert_not_called()
        self.assertFalse(os.path.exists(log))
        self.assertFalse(os.path.exists(os.path.join(self.tmp,
                                                     'state.json')))
        self.assertEqual(['c01', 'c01', 'c02'], sorted(
            s.compute_host for s in self.nova.servers.values()))

    def test_dry_run_shows_waves_plans_and_steps_and_changes_nothing(self):
        log = self.marker('exec.log')
        report = self.run_it(hosts=('c01', 'c02', 'c03'), max_hosts=2,
                             exec_cmd='echo {host} >> %s' % log,
                             check_cmd='ping -c1 {host}', migrate_back=True,
                             dry_run=True)
        self.assertTrue(report.ok, [h.row() for h in report.hosts])
        rows = {h.host: h for h in report.hosts}
        # fewest instances first, two hosts a wave
        self.assertEqual({'c03': 1, 'c02': 1, 'c01': 2},
                         {h: r.wave for h, r in rows.items()})
        self.assertEqual({'planned'}, {r.result for r in rows.values()})
        c01 = rows['c01']
        self.assertEqual('would move 2 (2 live)', c01.steps['drain'])
        self.assertEqual('echo c01 >> %s' % log, c01.steps['exec'])
        self.assertEqual('ping -c1 c01', c01.steps['check'])
        self.assertEqual('enable, move back', c01.steps['undrain'])
        self.assertEqual('would move 0', rows['c03'].steps['drain'])
        self.assertEqual(2, report.max_out_of_service)
        self.assert_nothing_changed(log)
        waves = [e.message for e in self.seen if e.kind == 'wave']
        self.assertEqual(['1: c03 c02 (dry run)', '2: c01 (dry run)'],
                         waves)

    def test_dry_run_says_which_wave_would_be_refused(self):
        log = self.marker('exec.log')
        self.nova.add('broken', host='c02', status='ERROR')
        report = self.run_it(hosts=('c01', 'c02'), exec_cmd='true > %s' % log,
                             dry_run=True)
        self.assertFalse(report.ok)
        rows = {h.host: h for h in report.hosts}
        self.assertEqual('planned', rows['c01'].result)
        self.assertEqual('would-refuse', rows['c02'].result)
        self.assertIn('1 would stay (broken', rows['c02'].message)
        self.assertIn('--allow-skipped', rows['c02'].message)
        self.nova.compute.disable_service.assert_not_called()
        self.assertFalse(os.path.exists(log))

    def test_drain_options_reach_each_drain(self):
        # --exclude leaves a server on its host (with --allow-skipped the
        # wave goes on); --retries 0: a server whose live migration fails
        # is not tried again.
        a1 = next(s for s in self.nova.servers.values() if s.name == 'a1')
        a2 = next(s for s in self.nova.servers.values() if s.name == 'a2')
        self.nova.scripts[a2.id] = ['fail', 'ok']
        report = self.run_it(hosts=('c01',), drain_options=drain.Options(
            poll_interval=0.01, retry_delay=0.01, timeout=30, retries=0,
            exclude=(a1.id,), allow_skipped=True))
        self.assertFalse(report.ok)
        self.assertEqual('c01', self.nova.servers[a1.id].compute_host)
        self.assertEqual(1, self.nova.compute.live_migrate_server.call_count)
        self.assertIn('drain', report.hosts[0].message)
        # Excluded, with nothing failing: the host is cycled, the undrain
        # (with or without --migrate-back) does not look for the excluded
        # server among those to bring back (the rig: it refused).
        for back in (False, True):
            report = self.run_it(hosts=('c01',), migrate_back=back,
                                 drain_options=drain.Options(
                                     poll_interval=0.01, retry_delay=0.01,
                                     timeout=30, exclude=(a1.id,),
                                     allow_skipped=True))
            self.assertTrue(report.ok, [h.row() for h in report.hosts])
            self.assertEqual('c01', self.nova.servers[a1.id].compute_host)

    # -- issue 20 item 4: leases, hosts disabled by others, the budget

    def test_no_break_lease_note_without_the_flag(self):
        self.run_it(hosts=('c03',), exec_cmd='true')
        notes = [str(e) for e in self.seen if 'lease' in str(e)]
        self.assertFalse([n for n in notes if '--break-lease' in n], notes)

    def test_named_host_disabled_by_someone_else_is_left_alone(self):
        log = self.marker('exec.log')
        rma = 'RMA: bad DIMM, do not enable'
        self.nova.services['c02'].status = 'disabled'
        self.nova.services['c02'].disabled_reason = rma
        report = self.run_it(hosts=('c01', 'c02'), max_hosts=2,
                             exec_cmd='echo {host} >> %s' % log)
        self.assertFalse(report.ok)
        rows = {h.host: h for h in report.hosts}
        self.assertEqual('failed', rows['c02'].result)
        self.assertIn('disabled by someone else', rows['c02'].message)
        self.assertIn('--include-disabled', rows['c02'].message)
        self.assertEqual('done', rows['c01'].result)
        self.assertEqual(('disabled', rma), (
            self.nova.services['c02'].status,
            self.nova.services['c02'].disabled_reason))
        with open(log) as f:
            self.assertEqual(['c01'], f.read().split())
        self.assertEqual(2, self.disabled_max)
        self.assertEqual(self.disabled_max, report.max_out_of_service)

    def test_included_disabled_host_counts_and_keeps_its_reason(self):
        # The case: with --max-hosts 1 a named host already
        # disabled was not counted (two out at once, the report said 1)
        # and was enabled at the end.
        log = self.marker('exec.log')
        rma = 'RMA: bad DIMM, do not enable'
        self.nova.services['c02'].status = 'disabled'
        self.nova.services['c02'].disabled_reason = rma
        report = self.run_it(hosts=('c01', 'c02'), include_disabled=True,
                             exec_cmd='echo {host} >> %s' % log)
        rows = {h.host: h for h in report.hosts}
        self.assertEqual('done', rows['c02'].result, rows['c02'].message)
        self.assertEqual(('disabled', rma), (
            self.nova.services['c02'].status,
            self.nova.services['c02'].disabled_reason))
        # c02 stays out: no room for c01 within one host out at once.
        self.assertEqual('not-started', rows['c01'].result)
        self.assertIn('out of service already (c02)', rows['c01'].message)
        self.assertFalse(report.ok)
        with open(log) as f:
            self.assertEqual(['c02'], f.read().split())
        self.assertEqual(1, self.disabled_max)
        self.assertEqual(1, report.max_out_of_service)

    def test_scope_host_disabled_by_someone_else_is_skipped(self):
        log = self.marker('exec.log')
        self.nova.services['c04'].status = 'disabled'
        self.nova.services['c04'].disabled_reason = 'RMA'
        self.nova.default_dest = 'c03'
        report = self.run_it(max_hosts=2, exec_cmd='echo {host} >> %s' % log)
        self.assertTrue(report.ok, [h.row() for h in report.hosts])
        rows = {h.host: h for h in report.hosts}
        self.assertEqual('skipped', rows['c04'].result)
        self.assertEqual(('disabled', 'RMA'), (
            self.nova.services['c04'].status,
            self.nova.services['c04'].disabled_reason))
        with open(log) as f:
            self.assertNotIn('c04', f.read().split())

    def test_a_lease_taken_after_the_start_is_left_alone(self):
        log = self.marker('exec.log')
        theirs = drain.with_lease('theirs', 'other@far:7')
        real = operator_step.run

        def run(template, host, timeout, **kw):
            if host == 'c03':  # meanwhile another admin takes c02
                svc = self.nova.services['c02']
                svc.status = 'disabled'
                svc.disabled_reason = theirs
            return real(template, host, timeout, **kw)
        with mock.patch.object(operator_step, 'run', side_effect=run):
            report = self.run_it(hosts=('c03', 'c02'), order='given',
                                 exec_cmd='echo {host} >> %s' % log)
        self.assertFalse(report.ok)
        rows = {h.host: h for h in report.hosts}
        self.assertEqual('done', rows['c03'].result)
        self.assertEqual('failed', rows['c02'].result)
        self.assertIn('other@far:7', rows['c02'].message)
        self.assertEqual(theirs, self.nova.services['c02'].disabled_reason)
        with open(log) as f:
            self.assertEqual(['c03'], f.read().split())

    # -- issue 20 item 6, 21 item 5: progress in the cloud, interruptions

    def test_progress_in_the_cloud_resumes_without_a_state_file(self):
        log = self.marker('exec.log')
        cmd = 'echo {host} >> %s; test {host} != c02 -o -e %s' % (
            log, self.marker('fixed'))
        first = self.run_it(hosts=('c03', 'c02'), order='given',
                            exec_cmd=cmd, state_file=None)
        self.assertFalse(first.ok)
        [agg] = [a for a in self.nova.aggregates.values()
                     if a.name != 'osc-nodeops-leases']
        self.assertTrue(agg.name.startswith('nodeops-maintain-hosts-'))
        self.assertEqual([], agg.hosts)
        self.assertIn('undrain=', agg.metadata['host:c03'])
        open(self.marker('fixed'), 'w').close()
        # c03 is enabled, its reason gone: only the cloud's record says
        # that it is done.
        self.assertIsNone(self.nova.services['c03'].disabled_reason)
        second = self.run_it(hosts=('c03', 'c02'), order='given',
                             exec_cmd=cmd, state_file=None)
        self.assertTrue(second.ok, [h.row() for h in second.hosts])
        with open(log) as f:
            self.assertEqual(['c03', 'c02', 'c02'], f.read().split())
        self.assertEqual([], [n for n in self.nova.aggregates  # removed
                              if n != 'osc-nodeops-leases'])

    def test_interrupted_exec_needs_rerun_exec(self):
        calls = []

        def run(template, host, timeout, **kw):
            calls.append(host)
            if len(calls) == 1:
                raise KeyboardInterrupt()
            return 0, ''
        with mock.patch.object(operator_step, 'run', side_effect=run):
            first = self.run_it(hosts=('c03',), exec_cmd='flash',
                                state_file=None)
            self.assertTrue(first.interrupted)
            [agg] = [a for a in self.nova.aggregates.values()
                     if a.name != 'osc-nodeops-leases']
            self.assertIn('exec-start=', agg.metadata['host:c03'])
            self.assertIn('exec-interrupted=', agg.metadata['host:c03'])
            second = self.run_it(hosts=('c03',), exec_cmd='flash',
                                 state_file=None)
            self.assertFalse(second.ok)
            self.assertIn('--rerun-exec c03', second.hosts[0].message)
            self.assertIn('interrupted', second.hosts[0].message)
            self.assertEqual(['c03'], calls)
            self.assertEqual('disabled', self.nova.services['c03'].status)
            third = self.run_it(hosts=('c03',), exec_cmd='flash',
                                state_file=None, rerun_exec=('c03',))
        self.assertTrue(third.ok, [h.row() for h in third.hosts])
        self.assertEqual(['c03', 'c03'], calls)

    def test_sigterm_and_sighup_act_like_sigint(self):
        import signal
        old = maintain._install_signals()
        self.addCleanup(maintain._restore_signals, old)
        for sig in (signal.SIGTERM, signal.SIGHUP):
            self.assertRaises(KeyboardInterrupt, os.kill, os.getpid(), sig)
        seen = []
        prev = signal.signal(signal.SIGINT, lambda s, f: seen.append(s))
        self.addCleanup(signal.signal, signal.SIGINT, prev)
        os.kill(os.getpid(), signal.SIGTERM)
        self.assertEqual([signal.SIGINT], seen)

    def test_another_live_run_is_refused(self):
        svc = self.nova.services['c01']
        svc.status = 'disabled'
        svc.disabled_reason = drain.with_lease('x', 'maintain:op@far:9')
        self.assertRaises(errors.Refused, self.run_it, hosts=('c01',))

    def test_usage(self):
        self.assertRaises(errors.NotFound, self.run_it, hosts=('nope',))
        self.assertRaises(errors.UsageError, self.run_it, hosts=('c01',),
                          aggregate='x')

    def test_events_carry_host_and_step(self):
        self.run_it(hosts=('c03',), exec_cmd='true')
        steps = [(e.host, e.step, e.kind) for e in self.seen if e.step]
        self.assertIn(('c03', 'exec', 'start'), steps)
        self.assertIn(('c03', 'undrain', 'host-done'), steps)


class TestOperatorStep(testtools.TestCase):

    def test_host_is_quoted(self):
        self.assertEqual("ssh c01 'reboot' # c01",
                         operator_step.command_line(
                             "ssh {host} 'reboot' # {host}", 'c01'))
        self.assertEqual("echo 'a.b-c_1'", operator_step.command_line(
            'echo {host}', 'a.b-c_1').replace('a.b-c_1', "'a.b-c_1'"))
        self.assertRaises(operator_step.StepError,
                          operator_step.command_line, 'echo {host}',
                          'c01; rm -rf /')
        self.assertRaises(operator_step.StepError,
                          operator_step.command_line, 'echo {host}', '-rf')

    def test_host_name_with_a_newline_is_refused(self):
        # Issue 21 item 8: ``$`` matches before a trailing newline.
        self.assertRaises(operator_step.StepError,
                          operator_step.command_line, 'echo {host}',
                          'c01\n')

    def test_explicit_environment(self):
        # Issue 21 item 4: PATH, HOME, LANG, TERM and what --exec-env
        # names; never OS_* unless named.
        self.useFixture(fixtures.EnvironmentVariable('OS_PASSWORD', 'pw'))
        self.useFixture(fixtures.EnvironmentVariable('OS_CLOUD', 'mine'))
        self.useFixture(fixtures.EnvironmentVariable('SSH_AUTH_SOCK', '/s'))
        self.useFixture(fixtures.EnvironmentVariable('HOME', '/home/op'))
        rc, out = operator_step.run(
            'env | cut -d= -f1 | sort | tr "\\n" " "; echo; '
            'echo "$SSH_AUTH_SOCK $HOME"', 'c01', 5,
            forward=('SSH_AUTH_SOCK',))
        self.assertEqual(0, rc)
        names, values = out.split(' | ')
        names = set(names.split())
        self.assertNotIn('OS_PASSWORD', names)
        self.assertNotIn('OS_CLOUD', names)
        self.assertEqual('/s /home/op', values)
        self.assertIn('PATH', names)
        self.assertLessEqual(names, {'PATH', 'HOME', 'LANG', 'TERM',
                                     'SSH_AUTH_SOCK', 'PWD', 'SHLVL', '_'})

    def test_timeout_ends_the_group(self):
        rc, out = operator_step.run('sleep 30 & sleep 30', 'c01', 0.3,
                                    grace=1)
        self.assertIsNone(rc)

    def test_exit_and_output(self):
        rc, out = operator_step.run('echo one; echo {host}; exit 3', 'c07',
                                    5)
        self.assertEqual(3, rc)
        self.assertEqual('one | c07', out)
