"""The generic machinery: features, faults, poller, executor."""

import os
import signal
import threading
import time
from unittest import mock

import testtools

from osc_nodeops import timeutil
from osc_nodeops.ops import drain
from osc_nodeops.ops import engine
from osc_nodeops.ops import runtime
from osc_nodeops.ops.cloud import calls as cloud_calls
from osc_nodeops.ops.cloud import nova as cloud_nova
from osc_nodeops.ops.engine import interrupts
from tests.unit import fakes


class FakeClock(object):
    """Monotonic clock that moves only when the executor waits."""

    def __init__(self):
        self.now = 1000.0
        self.lock = threading.Lock()

    def __call__(self):
        return self.now

    def wait(self, seconds):
        time.sleep(0.001)  # let the worker threads run
        with self.lock:
            self.now += seconds

    def runtime(self, sleep=time.sleep):
        """A run on this clock: the executor waits on it, no SIGINT
        handler."""
        return runtime.Runtime(clock=self, sleep=sleep, wait=self.wait,
                               handle_sigint=False)


def make_executor(nova, host='c01', target=None, events=None, **kw):
    features = cloud_nova.Features.from_proxy(nova.compute)
    clock = FakeClock()
    ctx = engine.Context(nova.compute, host, features=features,
                         target_host=target, events=events,
                         options={'block_migration': 'auto'},
                         runtime=clock.runtime(sleep=lambda s: None))
    poller = engine.HostPoller(nova.compute, host, features)
    kw.setdefault('poll_interval', 1.0)
    kw.setdefault('retry_delay', 1.0)
    kw.setdefault('timeout', 60.0)
    ex = engine.Executor(ctx, poller, **kw)
    return ctx, poller, ex


def live_items(nova, host='c01'):
    return [engine.PlanItem(s, drain.LiveMigrate()) for s in nova.on(host)]


class TestFeatures(testtools.TestCase):

    def test_negotiated_from_server_max(self):
        nova = fakes.FakeNova(max_version='2.24')
        f = cloud_nova.Features.from_proxy(nova.compute)
        self.assertEqual('2.24', f.effective)
        self.assertFalse(f.block_migration_auto)
        self.assertTrue(f.abort_running)
        self.assertFalse(f.live_host_without_force)

    def test_pinned_version_lowers_it(self):
        nova = fakes.FakeNova(max_version='2.95')
        nova.compute.default_microversion = '2.30'
        f = cloud_nova.Features.from_proxy(nova.compute)
        self.assertEqual('2.30', f.effective)
        self.assertTrue(f.live_host_without_force)
        self.assertFalse(f.cold_migrate_host)

    def test_discovery_failure_means_base_api(self):
        compute = mock.Mock()
        compute.get_endpoint_data.side_effect = fakes.http_error(503)
        f = cloud_nova.Features.from_proxy(compute)
        self.assertEqual('2.1', f.effective)
        self.assertFalse(f.block_migration_auto)


    def test_pinned_above_the_server_is_capped(self):
        nova = fakes.FakeNova(max_version='2.60')
        nova.compute.default_microversion = '2.90'
        f = cloud_nova.Features.from_proxy(nova.compute)
        self.assertEqual('2.60', f.effective)
        self.assertTrue(f.migration_changes_since)
        self.assertFalse(f.abort_queued)

    def test_named_features_at_their_versions(self):
        f = cloud_nova.Features(server_max='2.65')
        self.assertTrue(all((f.force_complete, f.abort_running,
                             f.block_migration_auto,
                             f.live_host_without_force, f.cold_migrate_host,
                             f.migration_changes_since, f.abort_queued)))
        f = cloud_nova.Features(server_max='2.64')
        self.assertFalse(f.abort_queued)
        self.assertTrue(f.migration_changes_since)
        self.assertFalse(cloud_nova.Features().force_complete)
        self.assertEqual('2.1', cloud_nova.Features().effective)


class TestSnapshot(testtools.TestCase):

    def test_accessors(self):
        nova = fakes.FakeNova()
        a = nova.add('a')
        b = nova.add('b', host='c02')
        snap = engine.Snapshot('c01', [a], [], elsewhere=[b])
        self.assertIs(a, snap.server(a.id))
        self.assertIsNone(snap.server(b.id))
        self.assertIs(b, snap.elsewhere(b.id))
        self.assertIsNone(snap.elsewhere(a.id))
        self.assertEqual([], snap.migrated_server_ids())

    def test_poller_lists_other_hosts_once_each(self):
        nova = fakes.FakeNova()
        nova.add('a')
        b = nova.add('b', host='c02')

        class Poller(engine.HostPoller):
            def other_hosts(self, migrations):
                return ['c02', 'c01', 'c02']
        poller = Poller(nova.compute, 'c01')
        snap = poller.snapshot(full=True)
        self.assertEqual(3, poller.calls)  # migrations, c01, c02
        self.assertEqual('b', snap.elsewhere(b.id).name)
        self.assertIsNone(snap.server(b.id))


class TestApiTimeout(testtools.TestCase):

    def test_default_given_and_kept(self):
        from keystoneauth1 import session as ksa_session
        conn = mock.Mock(session=ksa_session.Session())
        self.assertEqual(cloud_calls.DEFAULT_API_TIMEOUT,
                         cloud_calls.bound_api_timeout(conn))
        self.assertEqual(cloud_calls.DEFAULT_API_TIMEOUT, conn.session.timeout)
        self.assertEqual(5.0, cloud_calls.bound_api_timeout(conn, 5))
        self.assertEqual(5.0, cloud_calls.bound_api_timeout(conn))

    def test_every_request_of_the_session_carries_it(self):
        from keystoneauth1 import session as ksa_session
        sess = ksa_session.Session()
        cloud_calls.bound_api_timeout(mock.Mock(session=sess), 7)
        with mock.patch.object(sess, '_send_request') as send:
            send.side_effect = RuntimeError('stop')
            self.assertRaises(RuntimeError, sess.get, 'http://x.invalid/',
                              authenticated=False)
        self.assertEqual(7.0, send.call_args.kwargs.get('timeout'))


class TestFaults(testtools.TestCase):

    def test_transient_classification(self):
        from keystoneauth1 import exceptions as ksa
        self.assertTrue(cloud_calls.is_transient(fakes.http_error(503)))
        self.assertTrue(cloud_calls.is_transient(fakes.http_error(500)))
        self.assertTrue(cloud_calls.is_transient(ksa.ConnectFailure('reset')))
        self.assertTrue(cloud_calls.is_transient(ksa.ConnectTimeout('slow')))
        self.assertTrue(cloud_calls.is_transient(ConnectionResetError()))
        self.assertFalse(cloud_calls.is_transient(fakes.http_error(409)))
        self.assertFalse(cloud_calls.is_transient(fakes.http_error(404)))
        self.assertFalse(cloud_calls.is_transient(ValueError('x')))

    def test_call_with_retry(self):
        calls = []

        def fn():
            calls.append(1)
            if len(calls) < 3:
                raise fakes.http_error(502)
            return 'ok'
        self.assertEqual('ok', cloud_calls.call_with_retry(
            fn, sleep=lambda s: 0))
        self.assertEqual(3, len(calls))

    def test_call_with_retry_gives_up_on_refusal(self):
        fn = mock.Mock(side_effect=fakes.http_error(409))
        self.assertRaises(Exception, cloud_calls.call_with_retry, fn,
                          sleep=lambda s: 0)
        self.assertEqual(1, fn.call_count)


class TestPoller(testtools.TestCase):

    def test_two_list_calls_per_snapshot_whatever_the_size(self):
        nova = fakes.FakeNova()
        for i in range(30):
            nova.add('s%d' % i)
        f = cloud_nova.Features.from_proxy(nova.compute)
        since = timeutil.utcnow()
        poller = engine.HostPoller(nova.compute, 'c01', f, since=since)
        snap = poller.snapshot()
        self.assertEqual(30, len(snap.servers))
        self.assertEqual(2, poller.calls)
        nova.compute.servers.assert_called_once_with(
            details=True, all_projects=True, compute_host='c01')
        kwargs = nova.compute.migrations.call_args.kwargs
        self.assertEqual('c01', kwargs['host'])
        self.assertIn('changes_since', kwargs)
        nova.compute.get_server.assert_not_called()

    def test_planning_retries_each_listing_on_its_own(self):
        # Faults on two listings that never strike one of them more than
        # three times in a row: migrations fail on their 2nd and 4th call,
        # servers on their first three.  One retry around the whole
        # snapshot (5 tries) loses every try: mig ok/srv 503, mig 503,
        # mig ok/srv 503, mig 503, mig ok/srv 503 (the clean run of
        # e88991b failed so on the rig).  Each listing retried on its own:
        # migrations read once, servers on their 4th call.
        def flaky(mock, failing):
            real, count = mock.side_effect, [0]

            def call(*args, **kwargs):
                count[0] += 1
                if count[0] in failing:
                    raise fakes.http_error(503, 'Service Unavailable')
                return real(*args, **kwargs)
            mock.side_effect = call
            return count

        def nova_with_faults():
            nova = fakes.FakeNova()
            nova.add('s1')
            migs = flaky(nova.compute.migrations, {2, 4})
            srvs = flaky(nova.compute.servers, {1, 2, 3})
            return nova, migs, srvs

        nova, migs, srvs = nova_with_faults()
        poller = engine.HostPoller(nova.compute, 'c01')
        self.assertRaises(Exception, cloud_calls.call_with_retry,
                          lambda: poller.snapshot(full=True),
                          sleep=lambda s: None)
        self.assertEqual((5, 3), (migs[0], srvs[0]))

        nova, migs, srvs = nova_with_faults()
        poller = engine.HostPoller(nova.compute, 'c01')
        snap = poller.snapshot(
            full=True, each=lambda fn: cloud_calls.call_with_retry(
                fn, sleep=lambda s: None))
        self.assertEqual(1, len(snap.servers))
        self.assertEqual((1, 4), (migs[0], srvs[0]))

    def test_no_changes_since_before_2_59(self):
        nova = fakes.FakeNova(max_version='2.58')
        f = cloud_nova.Features.from_proxy(nova.compute)
        poller = engine.HostPoller(nova.compute, 'c01', f,
                                   since=timeutil.utcnow())
        poller.snapshot()
        nova.compute.migrations.assert_called_once_with(host='c01')


class TestExecutor(testtools.TestCase):

    def test_moves_and_verifies(self):
        nova = fakes.FakeNova()
        for i in range(5):
            nova.add('s%d' % i)
        ctx, poller, ex = make_executor(nova, max_parallel=2)
        items = ex.run(live_items(nova))
        self.assertEqual(['moved'] * 5, [i.result for i in items])
        self.assertEqual(['c02'] * 5, [i.destination for i in items])
        self.assertEqual([], nova.on('c01'))
        # bounded parallelism
        self.assertLessEqual(nova.in_flight_max, 2)
        # host-wide polling only: no GET per server; one migration list
        # per poll, the server list only when an action needed it
        nova.compute.get_server.assert_not_called()
        self.assertEqual(ex.polls.snapshots,
                         nova.compute.migrations.call_count)
        self.assertLess(nova.compute.servers.call_count,
                        ex.polls.snapshots)
        self.assertEqual(poller.calls, nova.compute.migrations.call_count +
                         nova.compute.servers.call_count)

    def test_failed_live_migration_back_on_same_host_is_failure(self):
        nova = fakes.FakeNova()
        srv = nova.add('a', script=['fail'])
        ctx, poller, ex = make_executor(nova, retries=0)
        [item] = ex.run(live_items(nova))
        self.assertEqual('failed', item.result)
        self.assertIn('error', item.message)
        self.assertIn('c01', item.message)
        self.assertEqual('c01', nova.servers[srv.id].compute_host)
        self.assertFalse(item.ok)

    def test_completed_record_but_server_still_there_is_failure(self):
        nova = fakes.FakeNova()
        nova.add('a', script=['lie'])
        ctx, poller, ex = make_executor(nova, retries=0)
        [item] = ex.run(live_items(nova))
        self.assertEqual('failed', item.result)
        self.assertIn('still on c01', item.message)

    def test_record_completed_before_host_changes_is_not_a_failure(self):
        nova = fakes.FakeNova()
        nova.add('a', script=['slow-host'])
        ctx, poller, ex = make_executor(nova, retries=1)
        [item] = ex.run(live_items(nova))
        self.assertEqual('moved', item.result, item.message)
        self.assertEqual(1, nova.compute.live_migrate_server.call_count)

    def test_retry_never_moves_a_server_that_left(self):
        nova = fakes.FakeNova()
        srv = nova.add('a', script=['fail'])
        events = []

        def on_event(event):
            events.append(event)
            if event.kind == 'retry':
                # someone else moved it meanwhile
                nova.servers[srv.id].compute_host = 'c03'
        ctx, poller, ex = make_executor(nova, retries=2, events=on_event)
        [item] = ex.run(live_items(nova))
        self.assertEqual('failed', item.result)
        self.assertIn('no longer on c01', item.message)
        self.assertEqual(1, nova.compute.live_migrate_server.call_count)

    def test_failed_move_is_retried_then_succeeds(self):
        nova = fakes.FakeNova()
        nova.add('a', script=['fail', 'ok'])
        ctx, poller, ex = make_executor(nova, retries=1)
        [item] = ex.run(live_items(nova))
        self.assertEqual('moved', item.result)
        self.assertEqual(2, item.attempts)
        self.assertEqual(2, nova.compute.live_migrate_server.call_count)

    def test_refused_move_does_not_stop_the_others(self):
        nova = fakes.FakeNova()
        bad = nova.add('bad', script=['refuse', 'refuse', 'refuse'])
        nova.add('good1')
        nova.add('good2')
        ctx, poller, ex = make_executor(nova, retries=2, max_parallel=1)
        items = {i.id: i for i in ex.run(live_items(nova))}
        self.assertEqual('failed', items[bad.id].result)
        self.assertIn('refused', items[bad.id].message)
        self.assertEqual(3, items[bad.id].attempts)
        self.assertEqual(['moved', 'moved'], [
            i.result for k, i in items.items() if k != bad.id])

    def test_transient_fault_after_accept_is_adopted_not_reissued(self):
        nova = fakes.FakeNova()
        nova.add('a', script=['transient-accepted'])
        ctx, poller, ex = make_executor(nova, retries=0)
        [item] = ex.run(live_items(nova))
        self.assertEqual('moved', item.result)
        self.assertEqual(1, nova.compute.live_migrate_server.call_count)
        self.assertEqual(1, len(nova.migrations))

    def test_transient_fault_before_accept_is_reissued(self):
        nova = fakes.FakeNova()
        nova.add('a', script=['transient-lost', 'ok'])
        ctx, poller, ex = make_executor(nova, retries=0)
        [item] = ex.run(live_items(nova))
        self.assertEqual('moved', item.result)
        self.assertEqual(2, nova.compute.live_migrate_server.call_count)

    def test_transient_poll_faults_do_not_lose_the_migration(self):
        nova = fakes.FakeNova()
        nova.add('a')
        nova.add('b')
        events = []
        ctx, poller, ex = make_executor(nova, events=events.append)
        nova.fail_lists = 4
        items = ex.run(live_items(nova))
        self.assertEqual(['moved', 'moved'], [i.result for i in items])
        self.assertTrue(any(e.kind == 'poll' for e in events))
        self.assertEqual(2, nova.compute.live_migrate_server.call_count)

    def test_timeout_abort(self):
        nova = fakes.FakeNova()
        srv = nova.add('a', script=['hang'])
        ctx, poller, ex = make_executor(nova, timeout=10.0,
                                        on_timeout='abort', retries=0)
        [item] = ex.run(live_items(nova))
        self.assertEqual(1, nova.compute.abort_server_migration.call_count)
        self.assertEqual('failed', item.result)
        self.assertIn('cancelled', item.message)
        # --retries 0: an aborted migration is not retried
        self.assertEqual(1, nova.compute.live_migrate_server.call_count)
        self.assertEqual('c01', nova.servers[srv.id].compute_host)

    def test_timeout_force_complete(self):
        nova = fakes.FakeNova()
        nova.add('a', script=['hang'])
        ctx, poller, ex = make_executor(nova, timeout=10.0,
                                        on_timeout='force-complete')
        [item] = ex.run(live_items(nova))
        self.assertEqual(
            1, nova.compute.force_complete_server_migration.call_count)
        self.assertEqual('moved', item.result)

    def test_timeout_leave(self):
        nova = fakes.FakeNova()
        nova.add('a', script=['hang'])
        ctx, poller, ex = make_executor(nova, timeout=10.0,
                                        on_timeout='leave')
        [item] = ex.run(live_items(nova))
        self.assertEqual('timeout', item.result)
        self.assertIn('left running', item.message)
        nova.compute.abort_server_migration.assert_not_called()
        nova.compute.force_complete_server_migration.assert_not_called()

    def test_interrupt_stops_issuing_and_finishes_in_flight(self):
        nova = fakes.FakeNova()
        for i in range(4):
            nova.add('s%d' % i)
        holder = {}

        def events(event):
            if event.kind == 'issued' and not holder.get('done'):
                holder['done'] = True
                holder['ex'].interrupts.interrupt()
        ctx, poller, ex = make_executor(nova, events=events, max_parallel=1)
        holder['ex'] = ex
        items = ex.run(live_items(nova))
        results = sorted(i.result for i in items)
        self.assertEqual(['moved', 'not-started', 'not-started',
                          'not-started'], results)
        self.assertTrue(ex.interrupts.interrupted)
        self.assertEqual(1, nova.compute.live_migrate_server.call_count)

    def test_second_interrupt_leaves_in_flight(self):
        nova = fakes.FakeNova()
        nova.add('a', script=['hang'])
        holder = {}

        def events(event):
            if event.kind == 'progress' and 'running' in event.message:
                holder['ex'].interrupts.interrupt()
                holder['ex'].interrupts.interrupt()
        ctx, poller, ex = make_executor(nova, events=events)
        holder['ex'] = ex
        [item] = ex.run(live_items(nova))
        self.assertEqual('interrupted', item.result)
        self.assertIn('rerun', item.message)
        nova.compute.abort_server_migration.assert_not_called()

    def test_timed_out_call_that_went_through_is_adopted(self):
        # A request that timed out (keystoneauth: ConnectTimeout) after nova
        # accepted it: looked up on the next poll, never issued twice.
        from keystoneauth1 import exceptions as ksa
        nova = fakes.FakeNova()
        nova.add('a')
        real = nova.compute.live_migrate_server.side_effect

        def slow(*args, **kwargs):
            real(*args, **kwargs)
            raise ksa.ConnectTimeout('read timed out (60 s)')
        nova.compute.live_migrate_server.side_effect = slow
        events = []
        ctx, poller, ex = make_executor(nova, retries=0,
                                        events=events.append)
        [item] = ex.run(live_items(nova))
        self.assertEqual('moved', item.result)
        self.assertEqual(1, nova.compute.live_migrate_server.call_count)
        self.assertEqual(['unsure', 'adopted'], [
            e.kind for e in events if e.kind in ('unsure', 'adopted')])

    def _faulty_retry_start(self, faults_wanted):
        """A move that fails once and is retried; the server list its
        retry's start looks at (a fresh poll's, made when first needed)
        answers 503 ``faults_wanted`` times."""
        nova = fakes.FakeNova()
        nova.add('a', script=['fail', 'ok'])
        events = []
        ctx, poller, ex = make_executor(nova, retries=1,
                                        events=events.append)
        real_list = poller.list_servers
        faults = []
        plan = live_items(nova)

        def list_servers():
            if ('requeued_at' in plan[0].data
                    and len(faults) < faults_wanted):
                faults.append(1)
                raise fakes.http_error(503, 'Service Unavailable')
            return real_list()
        poller.list_servers = list_servers
        [item] = ex.run(plan)
        return nova, item, faults, events

    def test_a_fault_in_the_list_a_start_looks_at_delays_not_fails(self):
        # Clean run 12 (functional test_faults_503_and_resets): the server
        # list a queued item's precheck looks at answered 503 once, and the
        # item ended "precheck failed" without its move being tried.  A
        # transient fault there is a reason to look again at a later poll.
        nova, item, faults, events = self._faulty_retry_start(2)
        self.assertEqual('moved', item.result, item.message)
        self.assertEqual(2, len(faults))
        self.assertEqual(2, nova.compute.live_migrate_server.call_count)
        self.assertEqual(2, len([e for e in events if e.kind == 'retry'
                                 and '503' in e.message]), events)

    def test_a_start_gives_up_after_the_tries_of_a_call(self):
        nova, item, faults, events = self._faulty_retry_start(100)
        self.assertEqual('failed', item.result)
        self.assertIn('503', item.message)
        self.assertEqual(5, len(faults))  # cloud_calls.call_with_retry's
        self.assertEqual(1, nova.compute.live_migrate_server.call_count)

    def test_unsure_call_rides_out_a_server_list_that_times_out(self):
        # The list a timed-out issue call is looked up in times out too
        # (functional test_drain_finishes_through_hung_requests): the item
        # stays unsure until a list answers, the run does not end on it.
        from keystoneauth1 import exceptions as ksa
        nova = fakes.FakeNova()
        nova.add('a')
        real = nova.compute.live_migrate_server.side_effect

        def lost(*args, **kwargs):
            if nova.compute.live_migrate_server.call_count == 1:
                # the request never reached nova (the proxy held it)
                raise ksa.ConnectTimeout('read timed out (3 s)')
            return real(*args, **kwargs)
        nova.compute.live_migrate_server.side_effect = lost
        events = []
        ctx, poller, ex = make_executor(nova, retries=0,
                                        events=events.append)
        real_list = poller.list_servers
        lists = []

        def list_servers():
            lists.append(1)
            if len(lists) == 1:
                raise ksa.ConnectTimeout('servers/detail timed out')
            return real_list()
        poller.list_servers = list_servers
        [item] = ex.run(live_items(nova))
        self.assertEqual('moved', item.result, item.message)
        # looked up once the list answered: not there, issued again
        self.assertEqual(2, nova.compute.live_migrate_server.call_count)
        self.assertGreater(len(lists), 1)
        self.assertEqual(1, len(list(nova.compute.migrations())))

    def test_verify_rides_out_a_server_list_that_times_out(self):
        # Watching the destination (undrain --migrate-back): the first
        # look at the servers is the verification; a list that times out
        # then is asked again on the next poll, the move is not retried.
        from keystoneauth1 import exceptions as ksa
        nova = fakes.FakeNova()
        srv = nova.add('a', host='c01')
        ctx, poller, ex = make_executor(nova, host='c02', target='c02',
                                        retries=1)
        real_list = poller.list_servers
        lists = []

        def list_servers():
            lists.append(1)
            if len(lists) == 1:
                raise ksa.ConnectTimeout('servers/detail timed out')
            return real_list()
        poller.list_servers = list_servers
        [item] = ex.run([engine.PlanItem(srv, drain.LiveMigrate(),
                                         source='c01')])
        self.assertEqual(('moved', 'c02'), (item.result, item.destination),
                         item.message)
        self.assertEqual(1, nova.compute.live_migrate_server.call_count)
        self.assertGreater(len(lists), 1)

    def test_hung_issue_call_times_out_and_is_not_waited_for(self):
        nova = fakes.FakeNova()
        nova.add('a')
        nova.add('b')
        release = threading.Event()
        self.addCleanup(release.set)
        real = nova.compute.live_migrate_server.side_effect

        def hang_for_a(server, **kwargs):
            if getattr(server, 'id', server) == a_id:
                release.wait(30)  # a call that never returns
                return None
            return real(server, **kwargs)
        nova.compute.live_migrate_server.side_effect = hang_for_a
        ctx, poller, ex = make_executor(nova, hung_after=0.5)
        items = live_items(nova)
        a_id = items[0].id
        started = time.monotonic()
        items = ex.run(items)
        took = time.monotonic() - started
        self.assertLess(took, 10)
        self.assertEqual(['timeout', 'moved'], [i.result for i in items])
        self.assertIn('the issue call did not return', items[0].message)
        self.assertIn('may or may not have taken effect', items[0].message)

    def _run_with_a_hung_poll(self, interrupts_at, grace=None):
        """One hanging live move; from the third poll on the API stops
        answering and Ctrl-C comes at each of INTERRUPTS_AT seconds.
        Asserts the run left within 10 s with the item interrupted;
        returns the fake nova."""
        nova = fakes.FakeNova()
        nova.add('a', script=['hang'])
        release = threading.Event()
        self.addCleanup(release.set)
        ctx, poller, ex = make_executor(nova)
        if grace is not None:
            ex.interrupts.grace = grace
        real = poller.list_migrations
        polls = []

        def list_migrations(since=None):
            polls.append(1)
            if len(polls) > 2:  # the API stops answering
                for at in interrupts_at:
                    threading.Timer(at, ex.interrupts.interrupt).start()
                release.wait(30)
            return real(since)
        poller.list_migrations = list_migrations
        started = time.monotonic()
        [item] = ex.run(live_items(nova))
        self.assertLess(time.monotonic() - started, 10)
        self.assertEqual('interrupted', item.result)
        self.assertTrue(ex.interrupts.interrupted)
        self.assertIn('rerun to pick it up', item.message)
        return nova

    def test_second_interrupt_during_a_hung_poll_leaves_at_once(self):
        self._run_with_a_hung_poll((0.3, 0.6))

    def test_one_interrupt_during_a_hung_poll_leaves_within_seconds(self):
        # Issue 19 items 3-4: the first Ctrl-C waits for the moves in
        # flight, not for a call that does not answer: a call still
        # pending a few seconds after it leaves as a second Ctrl-C would.
        nova = self._run_with_a_hung_poll((0.3,), grace=0.5)
        nova.compute.abort_server_migration.assert_not_called()

    def test_one_interrupt_during_a_hung_issue_call_leaves_within_seconds(
            self):
        nova = fakes.FakeNova()
        nova.add('a')
        nova.add('b')
        release = threading.Event()
        self.addCleanup(release.set)
        holder = {}

        def hang(*args, **kwargs):
            threading.Timer(0.3, holder['ex'].interrupts.interrupt).start()
            release.wait(30)   # the POST is never answered
        nova.compute.live_migrate_server.side_effect = hang
        ctx, poller, ex = make_executor(nova, max_parallel=1)
        ex.interrupts.grace = 0.5
        holder['ex'] = ex
        started = time.monotonic()
        items = ex.run(live_items(nova))
        self.assertLess(time.monotonic() - started, 10)
        self.assertEqual(['interrupted', 'not-started'],
                         [i.result for i in items])
        self.assertIn('may or may not have taken effect', items[0].message)
        self.assertEqual(1, nova.compute.live_migrate_server.call_count)

    def test_run_leaves_no_call_thread_to_wait_for(self):
        # ThreadPoolExecutor would join a hung worker at exit; the
        # executor's calls run in daemon threads.
        calls = cloud_calls.Calls()
        release = threading.Event()
        self.addCleanup(release.set)
        fut = calls.submit(lambda: release.wait(30))
        threads = [t for t in threading.enumerate()
                   if t.name == 'nodeops-call']
        self.assertTrue(threads)
        self.assertTrue(all(t.daemon for t in threads))
        release.set()
        self.assertTrue(fut.result(5))

    def test_action_error_does_not_crash_the_run(self):
        class Flaky(drain.LiveMigrate):
            calls = 0

            def progress(self, ctx, item, snap):
                Flaky.calls += 1
                if Flaky.calls == 1:
                    raise RuntimeError('bug')
                return super(Flaky, self).progress(ctx, item, snap)
        nova = fakes.FakeNova()
        srv = nova.add('a')
        events = []
        ctx, poller, ex = make_executor(nova, events=events.append)
        [item] = ex.run([engine.PlanItem(srv, Flaky())])
        self.assertEqual('moved', item.result)
        self.assertTrue(any('could not check progress' in e.message
                            for e in events))

    def test_skipped_items_are_not_executed(self):
        nova = fakes.FakeNova()
        srv = nova.add('a', status='ERROR')
        ctx, poller, ex = make_executor(nova)
        item = engine.PlanItem(srv, reason='ERROR')
        ex.run([item])
        self.assertIsNone(item.result)
        nova.compute.live_migrate_server.assert_not_called()
        self.assertEqual(0, poller.calls)

    def test_bad_arguments(self):
        nova = fakes.FakeNova()
        self.assertRaises(ValueError, make_executor, nova, max_parallel=0)
        self.assertRaises(ValueError, make_executor, nova,
                          on_timeout='explode')

    def test_row(self):
        nova = fakes.FakeNova()
        srv = nova.add('a', status='PAUSED')
        item = engine.PlanItem(srv, drain.LiveMigrate())
        item.result = 'moved'
        item.destination = 'c02'
        item.seconds = 3.14159
        self.assertEqual(
            (srv.id, 'a', 'p1', 'PAUSED', 'live', 'c01', 'c02', 'moved',
             3.1, ''), item.row())
        self.assertEqual(len(engine.ROW_COLUMNS), len(item.row()))


class TestDocumentedExample(testtools.TestCase):
    """The architecture page's StartServer example works as written."""

    def test_start_server_example(self):
        path = os.path.join(os.path.dirname(__file__), '..', '..', 'doc',
                            'source', 'contributor', 'architecture.rst')
        with open(path) as f:
            doc = f.read()
        start = doc.index('   class StartServer')
        code = doc[start:doc.index('\nand then:')]
        code = '\n'.join(line[3:] for line in code.splitlines())
        namespace = {'engine': engine}
        exec(code, namespace)
        nova = fakes.FakeNova()
        nova.add('off', status='SHUTOFF')
        nova.add('on')
        nova.compute.start_server.side_effect = lambda sid: setattr(
            nova.servers[sid], 'status', 'ACTIVE')
        ctx, poller, ex = make_executor(nova)
        snap = poller.snapshot(full=True)
        items = [engine.PlanItem(s, namespace['StartServer']())
                 for s in snap.servers.values() if s.status == 'SHUTOFF']
        ex.run(items, initial_snapshot=snap)
        self.assertEqual(['started'], [i.result for i in items])
        self.assertTrue(items[0].ok)
        nova.compute.start_server.assert_called_once_with(items[0].id)


class _Data(object):
    def __init__(self, url, api_version=(2, 0), max_microversion=None):
        self.url = url
        self.api_version = api_version
        self.max_microversion = max_microversion


class _Proxy(object):
    """A proxy as openstacksdk builds it: ENDPOINT is fixed when it is
    built; DATA is what discovery says now."""

    def __init__(self, service_type, endpoint, data):
        self.service_type = service_type
        self._endpoint = endpoint
        self._data = data

    def get_endpoint(self):
        return self._endpoint

    def get_endpoint_data(self):
        return self._data


class _Service(object):
    """Connection.network / .compute: a proxy built on first access and
    cached in ``_proxies``, as openstacksdk's ServiceDescription does."""

    def __init__(self, service_type):
        self.service_type = service_type

    def __get__(self, conn, owner):
        if conn is None:
            return self
        if self.service_type not in conn._proxies:
            conn.built.append(self.service_type)
            conn._proxies[self.service_type] = conn.make(self.service_type)
        return conn._proxies[self.service_type]


class _Conn(object):
    network = _Service('network')
    compute = _Service('compute')

    def __init__(self, make):
        self._proxies = {}
        self.built = []
        self.make = make


class TestDiscover(testtools.TestCase):

    GOOD = {'network': ('http://n/v2.0/', _Data('http://n/v2.0/')),
            'compute': ('http://c/v2.1', _Data('http://c/v2.1/', (2, 1),
                                               (2, 95)))}
    # what a discovery that met a 503 leaves: the bare URL, no version
    BAD = {'network': ('http://n', _Data('http://n', None)),
           'compute': ('http://c/v2.1', None)}

    def conn(self, bad_builds):
        """A connection whose first BAD_BUILDS[service] proxies are built
        on a failed discovery."""
        left = dict(bad_builds)

        def make(st):
            if left.get(st):
                left[st] -= 1
                endpoint, _ = self.BAD[st]
                # later looks at discovery succeed, the endpoint stays
                return _Proxy(st, endpoint, self.GOOD[st][1])
            return _Proxy(st, *self.GOOD[st])
        return _Conn(make)

    def test_a_proxy_built_on_a_failed_discovery_is_built_again(self):
        conn = self.conn({'network': 2, 'compute': 1})
        sleeps = []
        cloud_calls.discover(conn, sleep=sleeps.append)
        self.assertEqual('http://n/v2.0/', conn.network.get_endpoint())
        # nova's proxy reads discovery per request: once discovery works
        # the one built stays; neutron's keeps its bare URL: built again
        self.assertEqual(['compute', 'network', 'network', 'network'],
                         conn.built)
        self.assertEqual([1.0, 2.0], sleeps)

    def test_nova_without_microversions_is_not_discovered(self):
        conn = _Conn(lambda st: _Proxy(st, *self.BAD[st])
                     if st == 'compute' else _Proxy(st, *self.GOOD[st]))
        from osc_nodeops import errors
        exc = self.assertRaises(errors.Refused, cloud_calls.discover, conn,
                                attempts=3, sleep=lambda s: None)
        self.assertIn('version document of the compute API (3 attempts',
                      str(exc))
        self.assertEqual(['compute', 'compute', 'compute'], conn.built)

    def test_a_good_connection_costs_one_build_per_service(self):
        conn = self.conn({})
        cloud_calls.discover(conn, sleep=self.fail)
        self.assertEqual(['compute', 'network'], sorted(conn.built))

    def test_not_a_connection_is_left_alone(self):
        cloud_calls.discover(mock.Mock(), sleep=self.fail)


class TestInterrupts(testtools.TestCase):

    def make(self):
        self.kinds = []
        self.wake = threading.Event()
        return interrupts.Interrupts(
            lambda kind, message: self.kinds.append(kind), self.wake)

    def test_sigint_is_the_runs_inside_the_block_only(self):
        intr = self.make()
        before = signal.getsignal(signal.SIGINT)
        with intr.sigint():
            self.assertIsNot(before, signal.getsignal(signal.SIGINT))
            signal.raise_signal(signal.SIGINT)
            self.assertTrue(intr.stopping)
        self.assertIs(before, signal.getsignal(signal.SIGINT))
        self.assertTrue(intr.interrupted)
        self.assertFalse(intr.abandon)
        self.assertTrue(self.wake.is_set())
        self.assertEqual(['interrupt'], self.kinds)

    def test_no_handler_when_told_so(self):
        intr = interrupts.Interrupts(lambda *a: None, threading.Event(),
                                     handle_sigint=False)
        before = signal.getsignal(signal.SIGINT)
        with intr.sigint():
            self.assertIs(before, signal.getsignal(signal.SIGINT))

    def test_bounded_waits_until_a_second_interrupt(self):
        intr = self.make()
        self.assertEqual(3, intr.bounded(lambda: 3))
        intr.interrupt()
        self.assertEqual(4, intr.bounded(lambda: 4))
        intr.interrupt()
        self.assertTrue(intr.abandon)
        self.assertRaises(runtime.Abandoned, intr.bounded, lambda: 5)
