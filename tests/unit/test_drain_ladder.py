"""Issue 12 items 3, 4, 6: the escalation ladder, owner policy, blame."""

from unittest import mock

import testtools

from osc_nodeops import errors
from osc_nodeops.ops import drain
from osc_nodeops.ops import engine
from tests.unit import fakes
from tests.unit.test_drain import run_drain
from tests.unit.test_engine import make_executor


def timed_events(ex, sink):
    """Events with the executor's clock at the time they happened."""
    def record(event):
        sink.append((ex.clock(), event.kind, event.message))
    return record


def run_items(nova, items, **kw):
    events = []
    ctx, poller, ex = make_executor(nova, **kw)
    ctx._events = timed_events(ex, events)
    start = ex.clock()
    ex.run(items)
    return [(t - start, k, m) for t, k, m in events], ex


class TestParseLadder(testtools.TestCase):

    def test_one_step_and_sequences(self):
        self.assertEqual(('abort',), engine.parse_ladder('abort'))
        self.assertEqual(('force-complete', 'abort'),
                         engine.parse_ladder('force-complete, abort'))
        self.assertEqual(('force-complete', 'abort', 'leave'),
                         engine.parse_ladder('force-complete,abort,leave'))

    def test_bad_sequences_refused(self):
        for bad in ('', 'abort,', 'kill', 'leave,abort', 'abort,abort'):
            self.assertRaises(ValueError, engine.parse_ladder, bad)

    def test_validate_says_usage_error(self):
        nova = fakes.FakeNova()
        exc = self.assertRaises(
            errors.UsageError, drain.validate, nova.compute, ['c01'],
            drain.Options(hosts=('c01',), on_timeout='leave,abort'))
        self.assertIn('last', str(exc))
        self.assertRaises(errors.UsageError, drain.validate, nova.compute,
                          ['c01'], drain.Options(hosts=('c01',),
                                                 fallback='hot'))


class TestLadder(testtools.TestCase):

    def test_each_step_after_its_own_timeout(self):
        # force-complete is accepted but the guest still does not finish:
        # abort comes --step-timeout later, then the retry goes elsewhere.
        nova = fakes.FakeNova()
        nova.add('a', script=['hang', 'ok'])
        nova.compute.force_complete_server_migration.side_effect = None
        [item] = items = [engine.PlanItem(s, drain.LiveMigrate())
                          for s in nova.on('c01')]
        item.candidates = ('c02', 'c03')
        events, ex = run_items(nova, items, timeout=10.0, step_timeout=7.0,
                               on_timeout='force-complete,abort',
                               retries=1)
        timeouts = [(t, m) for t, k, m in events if k == 'timeout']
        self.assertEqual(2, len(timeouts), events)
        self.assertRegex(timeouts[0][1],
                         r'^force-complete after 1[01](\.\d)?s ')
        self.assertRegex(timeouts[1][1], r'^abort after 1[789](\.\d)?s ')
        self.assertGreaterEqual(timeouts[0][0], 10.0)
        self.assertLess(timeouts[0][0], 13.0)
        self.assertGreaterEqual(timeouts[1][0] - timeouts[0][0], 7.0)
        self.assertLess(timeouts[1][0] - timeouts[0][0], 10.0)
        self.assertEqual(
            1, nova.compute.force_complete_server_migration.call_count)
        self.assertEqual(1, nova.compute.abort_server_migration.call_count)
        # the retry names a host other than the one that failed (c02)
        calls = nova.compute.live_migrate_server.call_args_list
        self.assertEqual([None, 'c03'], [c.kwargs['host'] for c in calls])
        self.assertEqual('moved', item.result)
        self.assertEqual('c03', item.destination)
        self.assertEqual(3, len(item.steps), item.steps)
        self.assertIn('retry 1 of 1 (on c03)', item.steps[2])
        msg = item.full_message()
        for word in ('force-complete after 1', 'abort after 1',
                     'cancelled', 'on c03'):
            self.assertIn(word, msg)

    def test_a_refused_step_goes_on_to_the_next_at_once(self):
        nova = fakes.FakeNova()
        nova.add('a', script=['hang'])
        nova.compute.force_complete_server_migration.side_effect = \
            fakes.http_error(409, 'cannot force complete')
        items = [engine.PlanItem(s, drain.LiveMigrate())
                 for s in nova.on('c01')]
        events, ex = run_items(nova, items, timeout=10.0, step_timeout=50.0,
                               on_timeout='force-complete,abort', retries=0)
        [item] = items
        timeouts = [t for t, k, m in events if k == 'timeout']
        self.assertEqual(2, len(timeouts))
        # not 50 s later: the refusal moved on to abort
        self.assertLess(timeouts[1] - timeouts[0], 5.0)
        self.assertEqual('failed', item.result)
        self.assertIn('force-complete refused', item.full_message())
        self.assertIn('cancelled', item.full_message())

    def test_a_step_that_cannot_apply_is_skipped(self):
        # compute API 2.21: no force-complete (2.22); abort (2.24) neither
        # -> the ladder says so and the migration is left running.
        nova = fakes.FakeNova(max_version='2.21')
        nova.add('a', script=['hang'])
        items = [engine.PlanItem(s, drain.LiveMigrate())
                 for s in nova.on('c01')]
        run_items(nova, items, timeout=10.0,
                  on_timeout='force-complete,abort', retries=0)
        [item] = items
        self.assertEqual('timeout', item.result)
        self.assertEqual(2, len(item.steps))
        self.assertTrue(all('not possible' in s for s in item.steps))
        nova.compute.abort_server_migration.assert_not_called()

    def test_time_queued_behind_others_is_not_counted(self):
        # nova runs one live migration per source at a time (its default
        # max_concurrent_live_migrations) and queues the rest: the third
        # server waits behind two moves, longer than --timeout, and is not
        # aborted for the wait.  (Before: the two last were aborted.)
        nova = fakes.FakeNova()
        nova.live_slots = 1
        for name in 'abc':
            nova.add(name, script=['slow:8'])
        items = [engine.PlanItem(s, drain.LiveMigrate())
                 for s in nova.on('c01')]
        events, ex = run_items(nova, items, timeout=12.0, max_parallel=3,
                               on_timeout='abort', retries=0)
        self.assertEqual(['moved'] * 3, [i.result for i in items],
                         [i.full_message() for i in items])
        nova.compute.abort_server_migration.assert_not_called()
        self.assertEqual([], [m for t, k, m in events if k == 'timeout'])
        # all three were issued at once and ran one after the other: the
        # last finished more than twice --timeout after its issue
        self.assertEqual(3, nova.in_flight_max)
        done = sorted(t for t, k, m in events if k == 'moved')
        self.assertGreater(done[-1], 24.0)

    def test_a_queue_that_does_not_move_still_times_out(self):
        # Someone else's live migration from the source never ends: ours
        # waits queued behind it, and that wait is bounded by --timeout.
        nova = fakes.FakeNova()
        nova.live_slots = 1
        other = nova.add('other')
        nova.add_migration(other.id, status='running', dest='c03')
        srv = nova.add('a')
        items = [engine.PlanItem(srv, drain.LiveMigrate())]
        events, ex = run_items(nova, items, timeout=10.0, retries=0,
                               on_timeout='abort')
        timeouts = [(t, m) for t, k, m in events if k == 'timeout']
        self.assertEqual(1, len(timeouts), events)
        self.assertRegex(timeouts[0][1],
                         r'^abort after 1[01](\.\d)?s \(migration \d+ '
                         r'queued\)$')
        self.assertLess(timeouts[0][0], 13.0)
        self.assertEqual('failed', items[0].result)

    def test_a_queue_that_moves_restarts_the_clock(self):
        # Two moves ahead of ours, each shorter than --timeout: each time
        # one of them changes status the wait starts again; the timeout
        # message counts from the last restart, not from the issue.
        nova = fakes.FakeNova()
        nova.live_slots = 1
        for name in 'ab':
            nova.add(name, script=['slow:6'])
        nova.add('c', script=['hang'])
        items = [engine.PlanItem(s, drain.LiveMigrate())
                 for s in nova.on('c01')]
        events, ex = run_items(nova, items, timeout=10.0, max_parallel=3,
                               on_timeout='abort', retries=0)
        self.assertEqual(['moved', 'moved', 'failed'],
                         [i.result for i in items])
        [(t, msg)] = [(t, m) for t, k, m in events if k == 'timeout']
        self.assertRegex(msg, r'^abort after 1[01](\.\d)?s \(migration '
                         r'\d+ running\)$')
        # c started running after a and b (about 8 polls each), then had
        # its own 10 s
        self.assertGreater(t, 25.0)

    def test_timeout_per_gib_in_the_plan(self):
        # 2 GiB of memory and a 10 GiB root disk, 10 s per GiB: 120 s, more
        # than --timeout 60; without the disk copy (--block-migration no)
        # 20 s, less: --timeout.  A volume-backed root is not copied.
        flavor = {'vcpus': 1, 'ram': 2048, 'disk': 10, 'ephemeral': 0,
                  'swap': 0, 'extra_specs': {}, 'original_name': 'f'}
        nova = fakes.FakeNova()
        nova.add('big', flavor=flavor)
        nova.add('vol', flavor=flavor, image='')
        report, _ = run_drain(nova, dry_run=True, timeout=60.0,
                              timeout_per_gib=10.0)
        items = {i.server.name: i for i in report.items}
        self.assertEqual(120.0, items['big'].timeout)
        self.assertEqual('abort after 120s (12 GiB x 10s)',
                         items['big'].ladder[1])
        self.assertEqual(60.0, items['vol'].timeout)
        self.assertEqual('abort after 60s (2 GiB x 10s)',
                         items['vol'].ladder[1])
        report, _ = run_drain(nova, dry_run=True, timeout=60.0,
                              timeout_per_gib=10.0, block_migration='no')
        self.assertEqual({60.0}, {i.timeout for i in report.items})
        # Without the option, or without flavor sizes: the run's --timeout.
        report, _ = run_drain(nova, dry_run=True, timeout=60.0)
        self.assertEqual({None}, {i.timeout for i in report.items})
        self.assertEqual('abort after 60s', report.items[0].ladder[1])
        nova.servers.clear()
        nova.add('old')   # no embedded flavor (compute API < 2.47)
        report, _ = run_drain(nova, dry_run=True, timeout=60.0,
                              timeout_per_gib=10.0)
        [item] = report.items
        self.assertIsNone(item.timeout)
        self.assertIn('abort after 60s (--timeout-per-gib: no flavor '
                      'sizes', item.ladder[1])

    def test_an_items_own_timeout(self):
        # The executor times each item by its own timeout when it has one.
        nova = fakes.FakeNova()
        nova.add('small', script=['hang'])
        nova.add('big', script=['hang'])
        items = [engine.PlanItem(s, drain.LiveMigrate())
                 for s in nova.on('c01')]
        items[1].timeout = 25.0
        events, ex = run_items(nova, items, timeout=10.0, max_parallel=2,
                               on_timeout='abort', retries=0)
        at = {m.split()[2]: t for t, k, m in events if k == 'timeout'}
        self.assertEqual(2, len(at), events)
        self.assertLess(abs(min(at.values()) - 10.0), 3.0)
        self.assertLess(abs(max(at.values()) - 25.0), 3.0)
        self.assertRegex(items[1].full_message(), r'^abort after 2[5-7]')

    def test_a_stalled_migration_goes_to_the_ladder_early(self):
        # --stall-timeout 5: the guest's bytes still to copy stay at 1 GiB
        # (it dirties memory as fast as it is sent): abort after about
        # 5 s of no progress, not after --timeout 60.
        nova = fakes.FakeNova()
        nova.add('busy', script=['hang'])
        nova.add('fine', script=['slow:12'])
        items = [engine.PlanItem(s, drain.LiveMigrate())
                 for s in nova.on('c01')]
        ctx, poller, ex = make_executor(nova, timeout=60.0, retries=0,
                                        on_timeout='abort', max_parallel=2)
        ctx.options['stall_timeout'] = 5.0
        events = []
        ctx._events = timed_events(ex, events)
        start = ex.clock()
        ex.run(items)
        busy, fine = items
        self.assertEqual(('failed', 'moved'), (busy.result, fine.result),
                         busy.full_message())
        self.assertRegex(busy.steps[0], r'^stalled: 1024 MiB still to copy, '
                         r'no progress for [5-7](\.\d)?s$')
        self.assertIn('cancelled', busy.full_message())
        [t] = [t - start for t, k, m in events if k == 'timeout']
        self.assertLess(t, 12.0)
        self.assertEqual([], fine.steps)
        self.assertTrue(nova.compute.get_server_migration.called)

    def test_no_progress_calls_without_the_option(self):
        nova = fakes.FakeNova()
        nova.add('a', script=['slow:3'])
        items = [engine.PlanItem(s, drain.LiveMigrate())
                 for s in nova.on('c01')]
        run_items(nova, items)
        self.assertEqual('moved', items[0].result)
        nova.compute.get_server_migration.assert_not_called()

    def test_without_candidates_the_scheduler_chooses(self):
        nova = fakes.FakeNova()
        nova.add('a', script=['fail'])
        items = [engine.PlanItem(s, drain.LiveMigrate())
                 for s in nova.on('c01')]
        run_items(nova, items, retries=1)
        calls = nova.compute.live_migrate_server.call_args_list
        self.assertEqual([None, None], [c.kwargs['host'] for c in calls])
        self.assertIn('the scheduler chooses', items[0].steps[0])


class TestColdFallback(testtools.TestCase):

    def _item(self, nova, why='--fallback cold', **kw):
        srv = nova.add('a', script=['fail', 'fail'], **kw)
        item = engine.PlanItem(srv, drain.LiveMigrate())
        item.candidates = ('c02', 'c03')
        if why:
            item.data['cold_ok'] = why
        return item

    def test_after_retries_cold_with_state_restored(self):
        nova = fakes.FakeNova()
        item = self._item(nova)
        run_items(nova, [item], retries=1)
        self.assertEqual('moved', item.result, item.full_message())
        self.assertEqual(2, nova.compute.live_migrate_server.call_count)
        # cold, to a host no live attempt failed on... none left but the
        # scheduler (c02 and c03 both failed)
        self.assertEqual(1, nova.compute.migrate_server.call_count)
        srv = nova.servers[item.id]
        self.assertEqual('ACTIVE', srv.status)
        self.assertNotEqual('c01', srv.compute_host)
        self.assertEqual([item.id], nova.started)
        self.assertEqual('cold', item.method)
        msg = item.full_message()
        self.assertIn('cold fallback (--fallback cold)', msg)
        self.assertIn('ACTIVE again on', msg)

    def test_never_without_consent(self):
        nova = fakes.FakeNova()
        item = self._item(nova, why=None)
        run_items(nova, [item], retries=1)
        self.assertEqual('failed', item.result)
        nova.compute.migrate_server.assert_not_called()

    def test_not_for_a_paused_server(self):
        nova = fakes.FakeNova()
        item = self._item(nova, status='PAUSED')
        run_items(nova, [item], retries=0)
        self.assertEqual('failed', item.result)
        nova.compute.migrate_server.assert_not_called()
        self.assertIn('cannot cold-migrate a PAUSED', item.full_message())


def with_policy(nova, name, value, where='metadata', **kw):
    if where == 'metadata':
        kw['metadata'] = {drain.POLICY_KEY: value}
    else:
        kw['tags'] = ['%s=%s' % (drain.POLICY_KEY, value)]
    return nova.add(name, **kw)


class TestOwnerPolicy(testtools.TestCase):

    def test_parse(self):
        nova = fakes.FakeNova()
        for value in drain.POLICY_VALUES:
            for where in ('metadata', 'tag'):
                srv = with_policy(nova, 'x', value, where)
                self.assertEqual((value, ''), drain.owner_policy(srv))
        self.assertEqual((None, ''), drain.owner_policy(nova.add('y')))

    def test_untrusted_values_ignored_with_a_warning(self):
        nova = fakes.FakeNova()
        for bad in ('Skip', ' skip', 'skip ', 'stop;rm', 'x' * 300,
                    'live\n\x1b[31m'):
            value, warning = drain.owner_policy(
                with_policy(nova, 'x', bad))
            self.assertIsNone(value)
            self.assertIn('ignored', warning)
            self.assertNotIn('\n', warning)
            self.assertNotIn('\x1b', warning)
            self.assertLess(len(warning), 160)
        both = nova.add('z', metadata={drain.POLICY_KEY: 'skip'},
                        tags=['%s=live' % drain.POLICY_KEY])
        value, warning = drain.owner_policy(both)
        self.assertIsNone(value)
        self.assertIn('disagree', warning)

    def _plan(self, nova, **opts):
        report, events = run_drain(nova, dry_run=True, **opts)
        return {i.server.name: i for i in report.items}, report

    def test_skip_needs_the_operator(self):
        nova = fakes.FakeNova()
        with_policy(nova, 's', 'skip')
        items, report = self._plan(nova)
        self.assertEqual('live', items['s'].method)
        self.assertIn('moved anyway', items['s'].full_message())
        self.assertEqual('skip', items['s'].policy)
        self.assertTrue(report.ok)
        items, report = self._plan(nova, honour_skip=True)
        self.assertEqual('skip', items['s'].method)
        self.assertIn('honoured (--honour-skip)', items['s'].reason)
        self.assertFalse(report.ok)
        self.assertIsNone(items['s'].blame)

    def test_stop_cold_and_fallback_in_the_plan(self):
        nova = fakes.FakeNova()
        with_policy(nova, 'st', 'stop')
        with_policy(nova, 'co', 'cold')
        with_policy(nova, 'bad', 'please-skip')
        nova.add('plain')
        items, _ = self._plan(nova)
        self.assertEqual('stop-cold', items['st'].method)
        self.assertEqual(['stop', 'cold-migrate', 'confirm', 'start'],
                         items['st'].ladder)
        self.assertIn('cold fallback (owner policy nodeops:maintenance=cold'
                      ')', items['co'].ladder[-1])
        self.assertNotIn('cold fallback', ' '.join(items['plain'].ladder))
        self.assertIn('ignored', items['bad'].full_message())
        self.assertEqual('live', items['bad'].method)
        items, _ = self._plan(nova, fallback='cold')
        self.assertIn('cold fallback (--fallback cold)',
                      items['plain'].ladder[-1])

    def test_stop_moves_and_starts_again(self):
        nova = fakes.FakeNova()
        srv = with_policy(nova, 'st', 'stop')
        report, events = run_drain(nova)
        [item] = report.items
        self.assertEqual('moved', item.result, item.full_message())
        now = nova.servers[srv.id]
        self.assertEqual(('ACTIVE', 'c02'), (now.status, now.compute_host))
        self.assertEqual([srv.id], nova.stopped)
        self.assertEqual([srv.id], nova.started)
        nova.compute.live_migrate_server.assert_not_called()
        self.assertIn('stopped (owner policy stop)', item.steps)
        self.assertEqual('stop-cold', drain.parse_marker(
            now.metadata[drain.MARKER_KEY])['method'])

    def test_stop_starts_again_once_the_confirm_settles(self):
        # nova saves the migration 'confirmed' before the server leaves
        # VERIFY_RESIZE (clean run 13: the start was never sent and the
        # row said moved with the server SHUTOFF)
        nova = fakes.FakeNova()
        nova.confirm_lag = 2
        srv = with_policy(nova, 'st', 'stop')
        report, events = run_drain(nova)
        [item] = report.items
        self.assertEqual('moved', item.result, item.full_message())
        now = nova.servers[srv.id]
        self.assertEqual(('ACTIVE', 'c02'), (now.status, now.compute_host))
        self.assertEqual([srv.id], nova.started)
        self.assertIn('ACTIVE again on c02', item.steps)


class TestBlame(testtools.TestCase):

    def test_pre_existing_vs_move_vs_none(self):
        nova = fakes.FakeNova()
        err = nova.add('err', status='ERROR')
        # (no pre-flight here: the move is tried, and nova refuses it)
        locked = nova.add('locked', locked=True, script=['refuse'])
        bad = nova.add('bad', script=['fail'])
        good = nova.add('good')
        nova.compute.server_actions.side_effect = lambda sid: iter([
            mock.Mock(action='live-migration', request_id='req-1',
                      start_time='2026-12-02T01:00:00', message='Error')])
        nova.compute.get_server_action.return_value = mock.Mock(events=[
            {'event': 'compute_live_migration', 'result': 'Error'}])
        report, events = run_drain(nova, retries=0)
        rows = {i.server.name: i for i in report.items}
        self.assertEqual('pre-existing', rows['err'].blame)
        self.assertIn('ERROR before the drain', rows['err'].blame_detail)
        self.assertEqual('pre-existing', rows['locked'].blame,
                         rows['locked'].reason)
        self.assertIn('locked', rows['locked'].blame_detail)
        self.assertEqual('move', rows['bad'].blame)
        self.assertIn('migration', rows['bad'].blame_detail)
        self.assertIn('instance action live-migration req-1',
                      rows['bad'].blame_detail)
        self.assertIn('compute_live_migration Error',
                      rows['bad'].blame_detail)
        self.assertEqual((None, ''), (rows['good'].blame,
                                        rows['good'].blame_detail))
        # only the failed move's actions were read
        nova.compute.server_actions.assert_called_once_with(bad.id)
        self.assertTrue(any(e.kind == 'blame' for e in events))
        del err, locked, good

    def test_fault_message_in_the_detail(self):
        nova = fakes.FakeNova()
        bad = nova.add('bad', script=['fail'])
        nova.servers[bad.id].fault = {'message': 'No valid host was found',
                                      'code': 500}
        nova.compute.server_actions.side_effect = lambda sid: iter([])
        report, _ = run_drain(nova, retries=0)
        [item] = report.items
        self.assertEqual('move', item.blame)
        self.assertIn('nova fault: No valid host was found (code 500)',
                      item.blame_detail)
        self.assertIn('no move in the instance actions', item.blame_detail)


class TestSecondsInMessages(testtools.TestCase):
    """Issue 23 item 5: ``--timeout 0.3`` said "after 0s"."""

    def test_seconds_text(self):
        from osc_nodeops import timeutil
        for value, text in ((600, '600'), (600.0, '600'), (0.3, '0.3'),
                            (2.5, '2.5'), (2.96, '3'), (10.44, '10.4'),
                            (0.04, '0.04'), (0, '0')):
            self.assertEqual(text, timeutil.seconds_text(value), value)

    def test_sub_second_timeout_in_the_plan_and_the_row(self):
        nova = fakes.FakeNova()
        nova.add('a', script=['hang'])
        [item] = items = [engine.PlanItem(s, drain.LiveMigrate())
                          for s in nova.on('c01')]
        events, ex = run_items(nova, items, timeout=0.3, on_timeout='leave')
        self.assertEqual('timeout', item.result)
        self.assertIn('timed out after 0.3s', item.message)
        self.assertNotIn('after 0s', item.full_message())
