"""Drain/undrain: planning per state, S1, origin record, resume, commands."""

import io
import json
from unittest import mock

import testtools

from osc_nodeops import errors
from osc_nodeops import timeutil
from osc_nodeops.ops import drain
from osc_nodeops.ops import engine
from osc_nodeops.ops import lease
from osc_nodeops.ops.cloud import calls
from osc_nodeops.ops.cloud import nova as cloud_nova
from osc_nodeops.v1 import node
from tests.unit import fakes
from tests.unit.test_engine import FakeClock


def run_drain(nova, host='c01', **opts):
    opts.setdefault('retry_delay', 1.0)
    opts.setdefault('poll_interval', 1.0)
    options = drain.Options(**opts)
    clock = FakeClock()
    events = []
    report = drain.drain_host(
        nova.compute, host, nova.services[host], options,
        events=events.append, reason_default='maint by test',
        runtime=clock.runtime())
    return report, events


def run_undrain(nova, host='c01', events=None, **opts):
    opts.setdefault('retry_delay', 1.0)
    opts.setdefault('poll_interval', 1.0)
    clock = FakeClock()
    report = drain.undrain_host(
        nova.compute, host, nova.services[host], drain.Options(**opts),
        events=events, runtime=clock.runtime())
    return report


def drained_away(nova, name, source='c01', dest='c02', **kw):
    """A server our drain moved from ``source`` to ``dest``: the admin-only
    migration record and the metadata naming it."""
    srv = nova.add(name, host=dest, **kw)
    m = nova.add_migration(srv.id, status='completed', source=source,
                           dest=dest, migration_type='live-migration')
    srv.metadata = dict(srv.metadata or {}, **{
        drain.ORIGIN_KEY: source,
        drain.MARKER_KEY: drain.marker_value('live', source=source,
                                             migration=m.id)})
    return srv


def by_name(report):
    return {i.server.name: i for i in report.items}


MUTATORS = ('disable_service', 'enable_service', 'live_migrate_server',
            'migrate_server', 'confirm_server_resize', 'set_server_metadata',
            'delete_server_metadata', 'abort_server_migration',
            'force_complete_server_migration', 'resume_server',
            'suspend_server', 'update_service')


class TestPlan(testtools.TestCase):

    def plan(self, nova, max_version='2.95', **opts):
        nova.max_version = max_version
        features = cloud_nova.Features.from_proxy(nova.compute)
        options = drain.Options(**opts)
        ctx = engine.Context(nova.compute, 'c01', features=features,
                             target_host=options.target_host)
        snap = engine.HostPoller(nova.compute, 'c01', features).snapshot()
        return {i.server.name: i for i in drain.plan_drain(ctx, snap,
                                                           options)}

    def test_method_per_state(self):
        nova = fakes.FakeNova()
        for status in ('ACTIVE', 'PAUSED', 'SHUTOFF', 'ERROR', 'SUSPENDED',
                       'RESCUE', 'SHELVED', 'VERIFY_RESIZE', 'BUILD'):
            nova.add(status.lower(), status=status)
        nova.add('busy', task_state='rebooting')
        nova.add('excl')
        plan = self.plan(nova, exclude=('excl',))
        self.assertEqual('live', plan['active'].method)
        self.assertEqual('live', plan['paused'].method)
        self.assertEqual('cold', plan['shutoff'].method)
        for name in ('error', 'suspended', 'rescue', 'shelved',
                     'verify_resize', 'build', 'busy', 'excl'):
            self.assertEqual('skip', plan[name].method, name)
            self.assertTrue(plan[name].reason, name)
        self.assertIn('ERROR', plan['error'].reason)
        self.assertIn('--move-suspended', plan['suspended'].reason)
        self.assertIn('rebooting', plan['busy'].reason)
        self.assertIn('--exclude', plan['excl'].reason)

    def test_the_first_filter_that_decides_names_the_reason(self):
        # Planning is a chain of filters (plan.DRAIN_FILTERS): a server
        # both excluded and busy is excluded; a busy one never reaches the
        # method by status.
        nova = fakes.FakeNova()
        nova.add('both', task_state='rebooting')
        nova.add('busy', status='ERROR', task_state='rebooting')
        plan = self.plan(nova, exclude=('both',))
        self.assertEqual('excluded by --exclude', plan['both'].reason)
        self.assertEqual('task_state rebooting: busy (not started by this '
                         'tool)', plan['busy'].reason)

    def test_move_suspended_opt_in(self):
        nova = fakes.FakeNova()
        nova.add('susp', status='SUSPENDED')
        plan = self.plan(nova, move_suspended=True)
        self.assertEqual('live-suspended', plan['susp'].method)

    def test_exclude_by_id(self):
        nova = fakes.FakeNova()
        srv = nova.add('a')
        plan = self.plan(nova, exclude=(srv.id,))
        self.assertEqual('skip', plan['a'].method)

    def test_target_host_needs_microversions(self):
        nova = fakes.FakeNova()
        nova.add('act')
        nova.add('off', status='SHUTOFF')
        plan = self.plan(nova, max_version='2.40', target_host='c03')
        self.assertEqual('live', plan['act'].method)
        self.assertEqual('skip', plan['off'].method)
        self.assertIn('2.56', plan['off'].reason)
        plan = self.plan(nova, max_version='2.25', target_host='c03')
        self.assertEqual('skip', plan['act'].method)
        self.assertIn('2.30', plan['act'].reason)

    def test_block_migration_choice(self):
        nova = fakes.FakeNova(max_version='2.95')
        srv = nova.add('a')
        vol = nova.add('vol', image='')
        for max_version, choice, server, expected in (
                ('2.95', 'auto', srv, 'auto'),
                ('2.24', 'auto', srv, True),
                ('2.24', 'auto', vol, False),
                ('2.95', 'yes', srv, True),
                ('2.95', 'no', srv, False)):
            nova.max_version = max_version
            ctx = engine.Context(
                nova.compute, 'c01',
                features=cloud_nova.Features.from_proxy(nova.compute),
                options={'block_migration': choice})
            self.assertEqual(expected, drain.block_migration_for(ctx, server))


class TestDrainHost(testtools.TestCase):

    def test_mix_of_states(self):
        nova = fakes.FakeNova()
        for status in ('ACTIVE', 'PAUSED', 'SHUTOFF', 'ERROR'):
            nova.add(status.lower(), status=status)
        report, events = run_drain(nova)
        items = by_name(report)
        self.assertEqual('moved', items['active'].result)
        self.assertEqual('moved', items['paused'].result)
        self.assertEqual('moved', items['shutoff'].result)
        self.assertEqual('skipped', items['error'].result)
        # cold migration confirmed: SHUTOFF on the new host
        off = nova.servers[items['shutoff'].id]
        self.assertEqual(('c02', 'SHUTOFF'), (off.compute_host, off.status))
        nova.compute.confirm_server_resize.assert_called_once_with(off.id)
        # S1 with the default reason
        self.assertEqual('disabled', nova.services['c01'].status)
        self.assertEqual('maint by test',
                         nova.services['c01'].disabled_reason)
        # the ERROR server is left: not ok, unless skips are allowed
        self.assertFalse(report.ok)
        self.assertEqual([items['error']], report.left)
        # origin recorded on each moved server
        for name in ('active', 'paused', 'shutoff'):
            md = nova.servers[items[name].id].metadata
            self.assertEqual('c01', md[drain.ORIGIN_KEY])
            self.assertIn('method=', md[drain.MARKER_KEY])
        self.assertNotIn(drain.ORIGIN_KEY,
                         nova.servers[items['error'].id].metadata)

    def test_allow_skipped_makes_it_ok(self):
        nova = fakes.FakeNova()
        nova.add('a')
        nova.add('e', status='ERROR')
        report, _ = run_drain(nova, allow_skipped=True)
        self.assertTrue(report.ok)

    def test_empty_host_is_ok(self):
        nova = fakes.FakeNova()
        nova.add('a')
        report, _ = run_drain(nova)
        self.assertTrue(report.ok)
        self.assertEqual([], report.left)

    def test_failure_makes_it_not_ok(self):
        nova = fakes.FakeNova()
        nova.add('a', script=['fail', 'fail'])
        nova.add('b')
        report, _ = run_drain(nova, retries=1)
        items = by_name(report)
        self.assertEqual('failed', items['a'].result)
        self.assertEqual('moved', items['b'].result)
        self.assertFalse(report.ok)

    def test_target_host(self):
        nova = fakes.FakeNova()
        nova.add('a')
        nova.add('off', status='SHUTOFF')
        report, _ = run_drain(nova, target_host='c03')
        for item in report.items:
            self.assertEqual('c03', item.destination)
            self.assertEqual('c03', nova.servers[item.id].compute_host)
        self.assertEqual(
            'c03', nova.compute.live_migrate_server.call_args.kwargs['host'])
        nova.compute.migrate_server.assert_called_once_with(
            mock.ANY, host='c03')

    def test_dry_run_changes_nothing(self):
        nova = fakes.FakeNova()
        nova.add('a')
        nova.add('e', status='ERROR')
        report, _ = run_drain(nova, dry_run=True)
        self.assertEqual(['planned', 'skipped'],
                         [i.result for i in report.items])
        for name in MUTATORS:
            getattr(nova.compute, name).assert_not_called()
        self.assertEqual('enabled', nova.services['c01'].status)
        self.assertFalse(report.ok)

    def test_already_disabled_keeps_reason(self):
        nova = fakes.FakeNova()
        nova.services['c01'].status = 'disabled'
        nova.services['c01'].disabled_reason = 'disk swap'
        report, _ = run_drain(nova)
        # the lease lives apart (ops/lease.py): the reason is not written
        nova.compute.disable_service.assert_not_called()
        self.assertEqual('disk swap', nova.services['c01'].disabled_reason)
        self.assertIn("reason kept: 'disk swap'", report.service_note)

    def test_already_disabled_new_reason(self):
        nova = fakes.FakeNova()
        nova.services['c01'].status = 'disabled'
        nova.services['c01'].disabled_reason = 'disk swap'
        run_drain(nova, reason='RAM')
        self.assertEqual('RAM', nova.services['c01'].disabled_reason)

    def test_resume_picks_up_in_flight_live_migration(self):
        nova = fakes.FakeNova()
        srv = nova.add('a', task_state='migrating', metadata={
            drain.ORIGIN_KEY: 'c01',
            drain.MARKER_KEY: drain.marker_value('live')})
        m = nova.add_migration(srv.id, status='running', dest='c03')
        m._outcome = 'ok'
        m._step = 2  # still running when the rerun plans
        report, _ = run_drain(nova)
        [item] = report.items
        self.assertEqual('moved', item.result)
        self.assertEqual('c03', item.destination)
        nova.compute.live_migrate_server.assert_not_called()
        self.assertEqual(1, len(nova.migrations))
        self.assertTrue(report.ok)

    def test_resume_confirms_finished_cold_migration(self):
        nova = fakes.FakeNova()
        srv = nova.add('off', status='VERIFY_RESIZE', host='c02', metadata={
            drain.ORIGIN_KEY: 'c01',
            drain.MARKER_KEY: drain.marker_value('cold')})
        nova.add_migration(srv.id, status='finished',
                           migration_type='migration', dest='c02')
        report, _ = run_drain(nova)
        [item] = report.items
        self.assertEqual('moved', item.result)
        nova.compute.confirm_server_resize.assert_called_once_with(srv.id)
        nova.compute.migrate_server.assert_not_called()
        self.assertEqual('SHUTOFF', nova.servers[srv.id].status)

    def test_resume_live_migration_caught_after_host_change(self):
        nova = fakes.FakeNova()
        srv = nova.add('a', host='c02', task_state='migrating', metadata={
            drain.ORIGIN_KEY: 'c01',
            drain.MARKER_KEY: drain.marker_value('live')})
        m = nova.add_migration(srv.id, status='running', dest='c02')
        m._outcome = 'ok'
        m._step = 2  # the planning poll leaves it running
        report, _ = run_drain(nova)
        [item] = report.items
        self.assertEqual(('moved', 'c02'), (item.result, item.destination))
        nova.compute.live_migrate_server.assert_not_called()

    def test_rerun_does_not_count_finished_twice(self):
        nova = fakes.FakeNova()
        nova.add('a')
        first, _ = run_drain(nova)
        self.assertEqual(1, len(first.items))
        second, _ = run_drain(nova)
        self.assertEqual([], second.items)
        self.assertTrue(second.ok)
        self.assertEqual(1, nova.compute.live_migrate_server.call_count)

    def test_someone_elses_task_is_skipped(self):
        nova = fakes.FakeNova()
        nova.add('a', task_state='migrating')
        report, _ = run_drain(nova)
        [item] = report.items
        self.assertEqual('skipped', item.result)
        self.assertIn('not started by this tool', item.reason)
        nova.compute.live_migrate_server.assert_not_called()

    def test_origin_recorded_only_for_moves_that_happened(self):
        # issue 15 item 2: "No valid host" left nodeops:origin behind
        nova = fakes.FakeNova()
        ok = nova.add('ok')
        bad = nova.add('bad', script=['fail'])
        report, _ = run_drain(nova, retries=0)
        self.assertEqual({'ok': 'moved', 'bad': 'failed'},
                         {i.server.name: i.result for i in report.items})
        self.assertNotIn(drain.ORIGIN_KEY, nova.servers[bad.id].metadata)
        self.assertNotIn(drain.MARKER_KEY, nova.servers[bad.id].metadata)
        md = nova.servers[ok.id].metadata
        self.assertEqual('c01', md[drain.ORIGIN_KEY])
        marker = drain.parse_marker(md[drain.MARKER_KEY])
        [m] = [m for m in nova.migrations.values()
               if m.server_id == ok.id]
        self.assertEqual((str(m.id), 'c01', 'live'), (
            marker['migration'], marker['from'], marker['method']))
        # and the undrain that follows is not failed by the one left home
        undrain = run_undrain(nova, migrate_back=True)
        self.assertTrue(undrain.ok, [i.row() for i in undrain.items])
        self.assertEqual(['ok'], [i.server.name for i in undrain.items])

    def test_move_suspended(self):
        nova = fakes.FakeNova()
        srv = nova.add('s', status='SUSPENDED')
        report, _ = run_drain(nova, move_suspended=True)
        [item] = report.items
        self.assertEqual('moved', item.result, item.message)
        self.assertEqual('SUSPENDED', nova.servers[srv.id].status)
        self.assertEqual('c02', nova.servers[srv.id].compute_host)
        nova.compute.resume_server.assert_called_once_with(srv.id)
        nova.compute.suspend_server.assert_called_once_with(srv.id)

    def test_appeared_during_drain_is_reported(self):
        nova = fakes.FakeNova()
        nova.add('a')
        added = {}

        def events(event):
            if event.kind == 'issued' and not added:
                added['s'] = nova.add('late')
        options = drain.Options(poll_interval=1.0)
        clock = FakeClock()
        report = drain.drain_host(
            nova.compute, 'c01', nova.services['c01'], options,
            events=events, reason_default='x',
            runtime=clock.runtime())
        late = [i for i in report.items if i.id == added['s'].id]
        self.assertEqual('left', late[0].result)
        self.assertFalse(report.ok)


class TestLease(testtools.TestCase):
    """issue 11 item 7: two runs on one host are not allowed."""

    def held(self, nova, owner='ops@other-machine:4242', host='c01'):
        svc = nova.services[host]
        svc.status = 'disabled'
        svc.disabled_reason = drain.with_lease('maintenance', owner)
        return svc

    def test_drain_holds_the_lease_while_it_runs_and_releases_it(self):
        nova = fakes.FakeNova()
        nova.add('a')
        seen = []

        def events(event):
            if event.kind == 'issued':
                seen.append((nova.services['c01'].disabled_reason,
                             lease.holder(nova.compute, 'c01')))
        options = drain.Options(poll_interval=1.0, reason='disk swap')
        clock = FakeClock()
        drain.drain_host(nova.compute, 'c01', nova.services['c01'], options,
                         events=events,
                         runtime=clock.runtime())
        [(reason, held)] = seen
        self.assertEqual(drain.lease_owner(), held.owner)
        self.assertEqual('drain', held.kind)
        self.assertEqual('disk swap', reason)
        self.assertEqual('disk swap', nova.services['c01'].disabled_reason)
        self.assertIsNone(lease.holder(nova.compute, 'c01'))

    def test_second_drain_and_undrain_refused_while_held(self):
        nova = fakes.FakeNova()
        nova.add('a')
        self.held(nova)
        for run in (lambda: run_drain(nova),
                    lambda: drain.drain_hosts(
                        nova.compute, ['c01'], dict(nova.services),
                        drain.Options()),
                    lambda: run_undrain(nova),
                    lambda: run_undrain(nova, migrate_back=True)):
            exc = self.assertRaises(errors.Refused, run)
            self.assertIn('held by another osc-nodeops drain', str(exc))
            self.assertIn('ops@other-machine:4242', str(exc))
            self.assertIn('--break-lease', str(exc))
        for name in MUTATORS:
            getattr(nova.compute, name).assert_not_called()
        self.assertEqual('disabled', nova.services['c01'].status)

    def test_break_lease_takes_it_over(self):
        nova = fakes.FakeNova()
        nova.add('a')
        self.held(nova)
        report, events = run_drain(nova, break_lease=True)
        self.assertEqual(['moved'], [i.result for i in report.items])
        self.assertTrue(any('broke the drain lease of ops@other-machine:4242'
                            in e.message for e in events))
        self.assertEqual('maintenance',
                         nova.services['c01'].disabled_reason)
        self.held(nova)
        report = run_undrain(nova, break_lease=True)
        self.assertEqual('enabled', nova.services['c01'].status)

    def test_lease_of_a_dead_process_on_this_machine_is_taken_over(self):
        import socket
        import subprocess
        proc = subprocess.Popen(['true'])
        proc.wait()
        nova = fakes.FakeNova()
        self.held(nova, owner='ops@%s:%d' % (socket.gethostname(),
                                             proc.pid))
        report, events = run_drain(nova)
        self.assertTrue(any('that process is gone' in e.message
                            for e in events))

    def test_rerun_records_the_origin_a_killed_run_did_not(self):
        # killed between the verified move and the origin record
        import socket
        import subprocess
        proc = subprocess.Popen(['true'])
        proc.wait()
        nova = fakes.FakeNova()
        gone = nova.add('gone', host='c02', metadata={
            drain.MARKER_KEY: drain.marker_value('live', source='c01')})
        m = nova.add_migration(
            gone.id, status='completed', source='c01', dest='c02',
            created_at=timeutil.api_time(timeutil.utcnow()))
        old = nova.add('old', host='c03', metadata={
            drain.MARKER_KEY: drain.marker_value('live', source='c01')})
        nova.add_migration(old.id, status='completed', source='c01',
                           dest='c03', created_at='2020-01-01T00:00:00Z')
        nova.add('stay')
        self.held(nova, owner='ops@%s:%d' % (socket.gethostname(),
                                             proc.pid))
        report, events = run_drain(nova)
        self.assertEqual({'stay': 'moved', 'gone': engine.MOVED_EARLIER},
                         {i.server.name: i.result for i in report.items})
        md = nova.servers[gone.id].metadata
        self.assertEqual('c01', md[drain.ORIGIN_KEY])
        self.assertEqual(str(m.id), drain.parse_marker(
            md[drain.MARKER_KEY])['migration'])
        # a move older than the run that left the lease is not ours
        self.assertNotIn(drain.ORIGIN_KEY, nova.servers[old.id].metadata)
        self.assertTrue(any('origin recorded' in e.message for e in events))

    def test_rerun_rows_include_what_the_stopped_run_moved(self):
        # Issue 19 item 2: a run SIGKILLed with moves in flight; some
        # finished before the rerun listed the host.  The rerun's rows
        # say every server the stopped run moved (found by its intent
        # markers and the finished migration), and they count as done.
        import socket
        import subprocess
        proc = subprocess.Popen(['true'])
        proc.wait()
        nova = fakes.FakeNova()
        now = timeutil.api_time(timeutil.utcnow())
        # moved and origin recorded, then the run was killed
        done = nova.add('done', host='c02')
        md = nova.add_migration(done.id, status='completed', source='c01',
                                dest='c02', created_at=now)
        done.metadata = {drain.ORIGIN_KEY: 'c01', drain.MARKER_KEY:
                         drain.marker_value('live', source='c01',
                                            migration=md.id)}
        # in flight at the kill, finished before the rerun: intent only
        landed = nova.add('landed', host='c03', metadata={
            drain.MARKER_KEY: drain.marker_value('live', source='c01')})
        ml = nova.add_migration(landed.id, status='completed',
                                source='c01', dest='c03', created_at=now)
        # moved long before by another run: not the stopped run's
        old = nova.add('old', host='c03', metadata={
            drain.MARKER_KEY: drain.marker_value('live', source='c01')})
        nova.add_migration(old.id, status='completed', source='c01',
                           dest='c03', created_at='2020-01-01T00:00:00Z')
        # moved by someone else (no marker of ours)
        other = nova.add('other', host='c02')
        nova.add_migration(other.id, status='completed', source='c01',
                           dest='c02', created_at=now)
        nova.add('stay')
        self.held(nova, owner='ops@%s:%d' % (socket.gethostname(),
                                             proc.pid))
        report, events = run_drain(nova)
        rows = by_name(report)
        self.assertEqual({'done', 'landed', 'stay'}, set(rows))
        self.assertEqual('moved', rows['stay'].result)
        for name, mig, dest in (('done', md, 'c02'), ('landed', ml, 'c03')):
            item = rows[name]
            self.assertEqual(engine.MOVED_EARLIER, item.result)
            self.assertEqual(('live', 'c01', dest),
                             (item.method, item.source, item.destination))
            self.assertIn('moved by the run that was stopped',
                          item.full_message())
            self.assertIn('migration %s' % mig.id, item.full_message())
            self.assertTrue(item.ok)
            self.assertEqual(drain.BLAME_NONE, item.blame)
        self.assertTrue(report.ok)
        # the stopped run's origin is recorded where it was missing
        self.assertEqual('c01',
                         nova.servers[landed.id].metadata[drain.ORIGIN_KEY])
        # and nothing was moved twice
        moved = [c.args[0] if c.args else c.kwargs.get('server')
                 for c in nova.compute.live_migrate_server.call_args_list]
        self.assertNotIn(done.id, moved)
        self.assertNotIn(landed.id, moved)

    def test_rerun_without_a_stopped_run_has_no_earlier_rows(self):
        nova = fakes.FakeNova()
        drained_away(nova, 'before')   # an earlier drain, not taken over
        nova.add('a')
        report, _ = run_drain(nova)
        self.assertEqual(['a'], [i.server.name for i in report.items])

    def test_dry_run_ignores_the_lease(self):
        nova = fakes.FakeNova()
        nova.add('a')
        self.held(nova)
        report, _ = run_drain(nova, dry_run=True)
        self.assertEqual(['planned'], [i.result for i in report.items])

    def test_reason_stays_within_nova_limit(self):
        text = drain.with_lease('x' * 300, 'u@m:1')
        self.assertLessEqual(len(text), drain.REASON_MAX)
        self.assertEqual(('u@m:1',), drain.parse_lease(text)[:1])


class TestDrainHosts(testtools.TestCase):

    def test_rolling_disables_all_first(self):
        nova = fakes.FakeNova()
        for i in range(3):
            nova.add('a%d' % i, host='c01')
            nova.add('b%d' % i, host='c02')
        clock = FakeClock()
        order = []

        def events(event):
            if event.kind in ('start', 'service'):
                order.append((event.kind, str(event)))
        reports = drain.drain_hosts(
            nova.compute, ['c01', 'c02'], dict(nova.services),
            drain.Options(poll_interval=1.0), events=events,
            reason_default='x',
            runtime=clock.runtime())
        self.assertEqual(['c01', 'c02'], [r.host for r in reports])
        self.assertTrue(all(r.ok for r in reports))
        # nothing from c01 was parked on c02: both were disabled first
        self.assertEqual(6, len(nova.on('c03')))
        self.assertEqual('disabled', nova.services['c02'].status)
        kinds = [k for k, _ in order]
        self.assertEqual(['service', 'service'], kinds[:2])
        # one host after the other: c02's moves start after c01's are done
        first_b = min(i for i, (k, line) in enumerate(order)
                      if k == 'start' and line.startswith('b'))
        last_a = max(i for i, (k, line) in enumerate(order)
                     if k == 'start' and line.startswith('a'))
        self.assertGreater(first_b, last_a)

    def test_up_front_disable_events_carry_their_host(self):
        # --events consumers filter by host: the up-front disable of the
        # later hosts of a rolling drain must say which host it disabled.
        nova = fakes.FakeNova()
        nova.add('a', host='c01')
        nova.add('b', host='c02')
        clock = FakeClock()
        events = []
        drain.drain_hosts(
            nova.compute, ['c01', 'c02'], dict(nova.services),
            drain.Options(poll_interval=1.0), events=events.append,
            reason_default='x',
            runtime=clock.runtime())
        up_front = [e for e in events if e.kind == 'service'
                    and e.message.startswith('c02 nova-compute disabled')]
        self.assertEqual(1, len(up_front), [str(e) for e in events])
        self.assertEqual('c02', up_front[0].host)
        self.assertEqual([], [str(e) for e in events if e.host is None])

    def test_dry_run_disables_nothing(self):
        nova = fakes.FakeNova()
        nova.add('a', host='c01')
        nova.add('b', host='c02')
        reports = drain.drain_hosts(
            nova.compute, ['c01', 'c02'], dict(nova.services),
            drain.Options(dry_run=True), reason_default='x')
        self.assertEqual(['planned', 'planned'],
                         [r.items[0].result for r in reports])
        for name in MUTATORS:
            getattr(nova.compute, name).assert_not_called()


class TestValidate(testtools.TestCase):

    def test_unknown_host_changes_nothing(self):
        nova = fakes.FakeNova()
        self.assertRaises(errors.NotFound, drain.validate, nova.compute,
                          ['c01', 'nope'], drain.Options())
        for name in MUTATORS:
            getattr(nova.compute, name).assert_not_called()

    def test_target_among_hosts(self):
        nova = fakes.FakeNova()
        self.assertRaises(errors.UsageError, drain.validate, nova.compute,
                          ['c01'], drain.Options(target_host='c01'))
        nova.compute.services.assert_not_called()

    def test_host_named_twice(self):
        nova = fakes.FakeNova()
        self.assertRaises(errors.UsageError, drain.validate, nova.compute,
                          ['c01', 'c01'], drain.Options())

    def test_disabled_target(self):
        nova = fakes.FakeNova()
        nova.services['c03'].status = 'disabled'
        e = self.assertRaises(errors.Refused, drain.validate, nova.compute,
                              ['c01'], drain.Options(target_host='c03'))
        self.assertIn('disabled', str(e))

    def test_exclude_must_name_a_server_on_the_hosts(self):
        nova = fakes.FakeNova()
        srv = nova.add('a')
        nova.add('b', host='c02')
        drain.check_excludes(nova.compute, ['c01'], ('a', srv.id))
        e = self.assertRaises(errors.NotFound, drain.check_excludes,
                              nova.compute, ['c01'], ('b',))
        self.assertIn("--exclude b", str(e))

    def test_unknown_target(self):
        nova = fakes.FakeNova()
        self.assertRaises(errors.NotFound, drain.validate, nova.compute,
                          ['c01'], drain.Options(target_host='zz'))


class TestUndrain(testtools.TestCase):

    def test_enable_only(self):
        nova = fakes.FakeNova()
        nova.services['c01'].status = 'disabled'
        nova.services['c01'].disabled_reason = 'maintenance'
        report = run_undrain(nova)
        self.assertEqual('enabled', nova.services['c01'].status)
        # the SDK (and the fake) clear the reason on the object in place
        self.assertIn("was disabled: 'maintenance'", report.service_note)
        self.assertEqual([], report.items)
        nova.compute.live_migrate_server.assert_not_called()

    def test_keep_disabled(self):
        nova = fakes.FakeNova()
        nova.services['c01'].status = 'disabled'
        run_undrain(nova, keep_disabled=True)
        self.assertEqual('disabled', nova.services['c01'].status)

    def test_migrate_back_round_trip(self):
        nova = fakes.FakeNova()
        nova.add('a')
        nova.add('off', status='SHUTOFF')
        nova.add('stay', host='c03')
        run_drain(nova)
        self.assertEqual([], nova.on('c01'))
        report = run_undrain(nova, migrate_back=True)
        self.assertTrue(report.ok)
        self.assertEqual({'a', 'off'}, {s.name for s in nova.on('c01')})
        for item in report.items:
            self.assertEqual('moved', item.result)
            self.assertEqual('c01', item.destination)
            md = nova.servers[item.id].metadata
            self.assertNotIn(drain.ORIGIN_KEY, md)
            self.assertNotIn(drain.MARKER_KEY, md)
        self.assertEqual('enabled', nova.services['c01'].status)
        self.assertEqual(
            'c01', nova.compute.live_migrate_server.call_args.kwargs['host'])

    def test_already_home_clears_record(self):
        nova = fakes.FakeNova()
        srv = nova.add('a', metadata={drain.ORIGIN_KEY: 'c01',
                                      drain.MARKER_KEY: 'x'})
        report = run_undrain(nova, migrate_back=True)
        [item] = report.items
        self.assertEqual('skipped', item.result)
        self.assertTrue(item.ok)
        self.assertTrue(report.ok)
        self.assertNotIn(drain.ORIGIN_KEY, nova.servers[srv.id].metadata)

    def test_the_first_filter_that_decides_names_the_reason(self):
        # plan.UNDRAIN_FILTERS: already home before --exclude, --exclude
        # before the trust in the origin record.
        nova = fakes.FakeNova()
        nova.add('home', metadata={drain.ORIGIN_KEY: 'c01',
                                   drain.MARKER_KEY: 'x'})
        nova.add('forged', host='c02', metadata={drain.ORIGIN_KEY: 'c01',
                                                 drain.MARKER_KEY: 'x'})
        report = run_undrain(nova, migrate_back=True,
                             exclude=('home', 'forged'))
        self.assertEqual({'home': 'already on c01',
                          'forged': 'excluded by --exclude'},
                         {i.server.name: i.reason for i in report.items})

    def test_bad_exclude_changes_nothing(self):
        nova = fakes.FakeNova()
        nova.services['c01'].status = 'disabled'
        nova.add('a', host='c02', metadata={drain.ORIGIN_KEY: 'c01',
                                            drain.MARKER_KEY: 'x'})
        self.assertRaises(errors.NotFound, run_undrain, nova,
                          migrate_back=True, exclude=('zzz',))
        self.assertRaises(errors.UsageError, run_undrain, nova,
                          exclude=('a',))
        for name in MUTATORS:
            getattr(nova.compute, name).assert_not_called()

    def test_exclude_keeps_one_away(self):
        nova = fakes.FakeNova()
        for name in ('a', 'b'):
            drained_away(nova, name)
        report = run_undrain(nova, migrate_back=True, exclude=('b',),
                             allow_skipped=True)
        self.assertEqual({'a': 'moved', 'b': 'skipped'},
                         {i.server.name: i.result for i in report.items})
        self.assertEqual(['a'], [s.name for s in nova.on('c01')])

    def test_migrate_back_suspended_sees_the_resume(self):
        # issue 15 item 12: the resume happens on the host the server is
        # on, not on the host undrain watches; it must be seen there, not
        # waited out for 60 s and retried.
        nova = fakes.FakeNova()
        srv = nova.add('s', status='SUSPENDED')
        run_drain(nova, move_suspended=True)
        self.assertEqual('c02', nova.servers[srv.id].compute_host)
        events = []
        report = run_undrain(nova, migrate_back=True, move_suspended=True,
                             events=events.append)
        [item] = report.items
        self.assertEqual('moved', item.result, item.message)
        self.assertEqual('c01', nova.servers[srv.id].compute_host)
        self.assertEqual('SUSPENDED', nova.servers[srv.id].status)
        self.assertEqual([], [str(e) for e in events
                              if 'did not resume' in e.message
                              or e.kind == 'retry'])
        self.assertEqual(1, item.attempts)
        self.assertLess(item.seconds, 30)

    def test_forged_or_stale_origin_is_not_trusted(self):
        # issue 11 item 7: nodeops:origin is metadata the project can
        # write; only an admin-only migration record of our drain counts.
        nova = fakes.FakeNova()
        no_marker = nova.add('no-marker', host='c02',
                             metadata={drain.ORIGIN_KEY: 'c01'})
        bogus = nova.add('bogus', host='c02', metadata={
            drain.ORIGIN_KEY: 'c01',
            drain.MARKER_KEY: drain.marker_value('live', source='c01',
                                                 migration='12345')})
        real = drained_away(nova, 'real')
        stolen = nova.add('stolen', host='c02', metadata=dict(
            real.metadata))  # another server's migration
        other_src = drained_away(nova, 'other-src', source='c03')
        other_src.metadata[drain.ORIGIN_KEY] = 'c01'
        moved_on = drained_away(nova, 'moved-on')
        moved_on.compute_host = 'c03'  # moved elsewhere after the drain
        report = run_undrain(nova, migrate_back=True)
        items = by_name(report)
        self.assertTrue(report.ok, [i.row() for i in report.items])
        self.assertEqual('moved', items['real'].result)
        for name in ('no-marker', 'bogus', 'stolen', 'other-src',
                     'moved-on'):
            self.assertEqual('skipped', items[name].result, name)
            self.assertIn('not moved', items[name].row()[-1])
            self.assertTrue(items[name].ok)
            # left as it was: not moved, not cleared as if it were home
            self.assertEqual(
                'c01', nova.servers[items[name].id].metadata[
                    drain.ORIGIN_KEY])
        calls = nova.compute.live_migrate_server.call_args_list
        self.assertEqual({real.id}, {c.args[0] for c in calls})
        for srv in (no_marker, bogus, stolen):
            self.assertEqual('c02', nova.servers[srv.id].compute_host)

    def test_old_record_replayed_after_the_move_home_is_refused(self):
        nova = fakes.FakeNova()
        nova.add('a')
        run_drain(nova)
        [srv] = [s for s in nova.servers.values()]
        old = dict(srv.metadata)
        self.assertIn('migration=', old[drain.MARKER_KEY])
        self.assertTrue(run_undrain(nova, migrate_back=True).ok)
        self.assertEqual('c01', srv.compute_host)
        # moved away by an admin by hand; the project restores the record
        nova.compute.live_migrate_server(srv.id, host='c02')
        for _ in range(10):
            nova.tick()
        self.assertEqual('c02', srv.compute_host)
        srv.metadata.update(old)
        nova.compute.live_migrate_server.reset_mock()
        report = run_undrain(nova, migrate_back=True)
        self.assertTrue(report.ok)
        [item] = report.items
        self.assertEqual('skipped', item.result)
        nova.compute.live_migrate_server.assert_not_called()

    def test_failed_move_back_keeps_record(self):
        nova = fakes.FakeNova()
        srv = drained_away(nova, 'a', script=['fail'])
        report = run_undrain(nova, migrate_back=True, retries=0)
        self.assertFalse(report.ok)
        self.assertEqual('c01',
                         nova.servers[srv.id].metadata[drain.ORIGIN_KEY])


class FakeApp(object):

    def __init__(self, nova):
        self.client_manager = mock.Mock()
        self.client_manager.sdk_connection = fakes.FakeCloud(nova)
        self.stdout = io.StringIO()
        self.stderr = io.StringIO()
        self.options = mock.Mock(debug=False)
        self.logins = 0

    def prepare_to_run_command(self, cmd):
        """osc-lib's login, asked for by the command's first cloud call
        (base._NodeOpsCommand.conn) with auth_required set."""
        assert cmd.auth_required, 'a login without auth_required'
        self.logins += 1


def run_command(cls, nova, argv):
    app = FakeApp(nova)
    cmd = cls(app, None)
    parser = cmd.get_parser('openstack compute node')
    args = parser.parse_args(argv)
    rc = cmd.run(args)
    return rc, app


class TestCommands(testtools.TestCase):

    def test_drain_json_and_exit_0(self):
        nova = fakes.FakeNova()
        nova.add('a')
        rc, app = run_command(node.DrainNode, nova,
                              ['c01', '--poll-interval', '0.01', '-f',
                               'json'])
        self.assertEqual(0, rc)
        rows = json.loads(app.stdout.getvalue())
        self.assertEqual(['ID', 'Name', 'Project', 'Status Before', 'Method',
                          'Source Compute', 'Dest Compute', 'Result',
                          'Seconds', 'Message', 'Blockers', 'Notes', 'Fits',
                          'Landing', 'Queue', 'Policy', 'Ladder', 'Steps',
                          'Blame', 'Blame Detail', 'Audit'], list(rows[0]))
        # issue 12 items 3, 4, 6: the planned ladder, no policy, no blame
        self.assertEqual(['live', 'abort after 600s',
                          'left running after 300s more',
                          'retry 1 time(s) on another host'],
                         rows[0]['Ladder'])
        self.assertEqual((None, [], None), (
            rows[0]['Policy'], rows[0]['Steps'], rows[0]['Blame']))
        self.assertEqual('moved', rows[0]['Result'])
        self.assertEqual([], rows[0]['Audit'])  # issue 12 item 5
        # The pre-flight's fields (issue 12): a plain server, a local disk:
        # a note, not a blocker (issue 23 item 6).
        self.assertEqual([], rows[0]['Blockers'])
        self.assertEqual(['local-disk'],
                         [r['code'] for r in rows[0]['Notes']])
        self.assertEqual([], rows[0]['Notes'][0]['blocks'])
        self.assertEqual((True, 'c02'), (rows[0]['Fits'],
                                         rows[0]['Landing']))
        self.assertIn('disabled', app.stderr.getvalue())

    def test_every_request_has_a_timeout(self):
        # issue 11 item 3: OSC's session has none; 60 s, or --api-timeout
        nova = fakes.FakeNova()
        rc, app = run_command(node.DrainNode, nova, ['c01', '--dry-run'])
        session = app.client_manager.sdk_connection.session
        self.assertEqual(calls.DEFAULT_API_TIMEOUT, session.timeout)
        rc, app = run_command(node.UndrainNode, nova,
                              ['c01', '--api-timeout', '7.5'])
        session = app.client_manager.sdk_connection.session
        self.assertEqual(7.5, session.timeout)

    def test_drain_exit_1_when_something_left(self):
        nova = fakes.FakeNova()
        nova.add('e', status='ERROR')
        rc, app = run_command(node.DrainNode, nova,
                              ['c01', '--poll-interval', '0.01', '-f',
                               'json'])
        self.assertEqual(1, rc)
        self.assertEqual('skipped', json.loads(
            app.stdout.getvalue())[0]['Result'])
        rc, app = run_command(node.DrainNode, nova,
                              ['c01', '--allow-skipped', '-f', 'json'])
        self.assertEqual(0, rc)

    def test_drain_unknown_host(self):
        nova = fakes.FakeNova()
        nova.add('a')
        rc, app = run_command(node.DrainNode, nova, ['nope'])
        self.assertEqual(1, rc)
        self.assertEqual("no nova-compute service on host 'nope'\n",
                         app.stderr.getvalue())
        self.assertEqual('', app.stdout.getvalue())
        nova.compute.disable_service.assert_not_called()

    def test_drain_forbidden_is_one_line(self):
        from openstack import exceptions as sdk_exc
        nova = fakes.FakeNova()
        nova.compute.services.side_effect = sdk_exc.ForbiddenException(
            'Policy doesn\'t allow os_compute_api:os-services:list')
        rc, app = run_command(node.DrainNode, nova, ['c01'])
        self.assertEqual(1, rc)
        self.assertEqual(1, len(app.stderr.getvalue().splitlines()))
        self.assertIn('this command needs the admin role',
                      app.stderr.getvalue())

    def test_drain_usage_error_exit_2(self):
        nova = fakes.FakeNova()
        app = FakeApp(nova)
        parser = node.DrainNode(app, None).get_parser('drain')
        with mock.patch('sys.stderr', io.StringIO()):
            e = self.assertRaises(SystemExit, parser.parse_args,
                                  ['c01', '--max-parallel', '0'])
        self.assertEqual(2, e.code)

    def test_undrain_keep_disabled_is_gone(self):
        # It existed only to be refused (issue 22): argparse's exit 2.
        parser = node.UndrainNode(FakeApp(fakes.FakeNova()),
                                  None).get_parser('undrain')
        for argv in (['c01', '--keep-disabled', '--migrate-back'],
                     ['c01', '--keep-disabled']):
            with mock.patch('sys.stderr', io.StringIO()) as err:
                e = self.assertRaises(SystemExit, parser.parse_args, argv)
            self.assertEqual(2, e.code)
            self.assertIn('unrecognized arguments: --keep-disabled',
                          err.getvalue())

    def test_undrain_migrate_back(self):
        nova = fakes.FakeNova()
        drained_away(nova, 'a')
        nova.services['c01'].status = 'disabled'
        rc, app = run_command(node.UndrainNode, nova,
                              ['c01', '--migrate-back', '--poll-interval',
                               '0.01', '-f', 'json'])
        self.assertEqual(0, rc)
        [row] = json.loads(app.stdout.getvalue())
        self.assertEqual(('moved', 'c02', 'c01'),
                         (row['Result'], row['Source Compute'],
                          row['Dest Compute']))
        self.assertEqual('enabled', nova.services['c01'].status)


class TestOperatorFindings(testtools.TestCase):
    """Issue 15: what an operator hit in the first hour."""

    def test_undrain_dry_run_names_the_destination(self):
        nova = fakes.FakeNova()
        drained_away(nova, 'a')
        rc, app = run_command(node.UndrainNode, nova,
                              ['c01', '--migrate-back', '--dry-run', '-f',
                               'json'])
        [row] = json.loads(app.stdout.getvalue())
        self.assertEqual(('planned', 'c02', 'c01'),
                         (row['Result'], row['Source Compute'],
                          row['Dest Compute']))

    def test_drain_dry_run_names_the_target_host(self):
        nova = fakes.FakeNova()
        nova.add('a')
        rc, app = run_command(node.DrainNode, nova,
                              ['c01', '--target-host', 'c03', '--dry-run',
                               '-f', 'json'])
        [row] = json.loads(app.stdout.getvalue())
        self.assertEqual('c03', row['Dest Compute'])

    def test_plain_undrain_says_once_what_it_did(self):
        nova = fakes.FakeNova()
        nova.services['c01'].status = 'disabled'
        rc, app = run_command(node.UndrainNode, nova, ['c01'])
        self.assertEqual(0, rc)
        self.assertEqual(['service: c01 nova-compute enabled (was '
                          'disabled: None)'],
                         app.stderr.getvalue().splitlines())

    def test_microversion_only_in_the_log(self):
        nova = fakes.FakeNova()
        with self.assertLogs('osc_nodeops.ops.drain', 'INFO') as logs:
            rc, app = run_command(node.DrainNode, nova,
                                  ['c01', '--dry-run'])
        self.assertNotIn('microversion', app.stderr.getvalue())
        self.assertIn('compute API microversion', '\n'.join(logs.output))


class TestRowsKeptOnError(testtools.TestCase):
    """Issue 11 (Low): an error on a later host, or in the final re-list,
    used to throw away the rows already gathered."""

    def _fail_listing(self, nova, host, after=0):
        """compute.servers(compute_host=HOST) raises after AFTER calls."""
        from openstack import exceptions as sdk_exc
        real = nova.compute.servers.side_effect
        seen = [0]

        def servers(**query):
            if query.get('compute_host') == host:
                seen[0] += 1
                if seen[0] > after:
                    raise sdk_exc.BadRequestException(
                        'invalid query for %s' % host)
            return real(**query)
        nova.compute.servers.side_effect = servers

    def test_error_on_a_later_host_keeps_the_first_hosts_rows(self):
        nova = fakes.FakeNova()
        a = nova.add('a')
        nova.add('b', host='c02')
        self._fail_listing(nova, 'c02')
        rc, app = run_command(node.DrainNode, nova,
                              ['c01', 'c02', '--poll-interval', '0.01',
                               '-f', 'json'])
        self.assertEqual(1, rc)
        rows = json.loads(app.stdout.getvalue())
        self.assertEqual([(a.id, 'moved')],
                         [(r['ID'], r['Result']) for r in rows])
        last = app.stderr.getvalue().splitlines()[-1]
        self.assertTrue(last.startswith('c02: '), last)
        self.assertIn('invalid query for c02', last)

    def test_error_in_the_final_relist_keeps_the_rows(self):
        nova = fakes.FakeNova()
        a = nova.add('a')
        # the first listings (pre-flight, plan, polls) work, the re-list
        # does not
        self._fail_listing(nova, 'c01', after=0)
        calls = {'n': 0}
        real = nova.compute.servers.side_effect

        def servers(**query):
            calls['n'] += 1
            if calls['n'] < 4 or nova.servers[a.id].compute_host == 'c01':
                from tests.unit import fakes as f
                return f.FakeNova._list_servers(nova, **query)
            return real(**query)
        nova.compute.servers.side_effect = servers
        rc, app = run_command(node.DrainNode, nova,
                              ['c01', '--poll-interval', '0.01', '-f',
                               'json'])
        self.assertEqual(1, rc)
        [row] = json.loads(app.stdout.getvalue())
        self.assertEqual((a.id, 'moved'), (row['ID'], row['Result']))
        self.assertIn('listing the host after the moves failed',
                      app.stderr.getvalue().splitlines()[-1])
