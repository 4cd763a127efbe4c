"""Issue 24 items 1 and 3: the slot scheduler and the wave's one poll."""

import datetime
import os
import signal
import threading
import time

import fixtures
import testtools

from osc_nodeops.ops import drain
from osc_nodeops.ops import maintain
from osc_nodeops.ops import engine
from osc_nodeops.ops.cloud import nova as cloud_nova
from osc_nodeops.ops.engine import slots
from osc_nodeops.ops.engine import wave
from tests.unit import fakes
from tests.unit.test_drain import run_drain
from tests.unit import test_engine
from tests.unit import test_maintain
from tests.unit.test_engine import FakeClock


def item_on(nova, name, host='c01', candidates=()):
    srv = nova.add(name, host=host)
    item = engine.PlanItem(srv, drain.LiveMigrate())
    item.candidates = tuple(candidates)
    return item


def features(nova):
    return cloud_nova.Features.from_proxy(nova.compute)


class Watch(object):
    """Every migration list the fake answers: the unfinished moves out of
    and into each host at that moment, and the statuses of ours."""

    def __init__(self, nova):
        self.nova = nova
        self.most_out = 0
        self.most_in = 0
        self.sources_at_once = 0
        # a live migration 'queued' while another one from its source
        # works: waiting for nova's max_concurrent_live_migrations
        self.queued_behind = 0
        real = nova.compute.migrations.side_effect

        def listed(*a, **kw):
            out = list(real(*a, **kw))
            running = [m for m in nova.migrations.values()
                       if slots.unfinished(m)]
            for host in nova.services:
                self.most_out = max(self.most_out, sum(
                    1 for m in running if m.source_compute == host))
                self.most_in = max(self.most_in, sum(
                    1 for m in running if m.dest_compute == host))
            self.sources_at_once = max(self.sources_at_once, len(
                {m.source_compute for m in running}))
            for m in running:
                if m.status == 'queued' and any(
                        x.source_compute == m.source_compute and x.status
                        not in ('accepted', 'queued') for x in running):
                    self.queued_behind += 1
            return iter(out)
        nova.compute.migrations.side_effect = listed


class TestSlots(testtools.TestCase):

    def test_a_source_slot_counts_ours_and_the_clouds(self):
        nova = fakes.FakeNova()
        pool = slots.Slots(per_source=1, per_dest=1)
        a, b = item_on(nova, 'a'), item_on(nova, 'b')
        self.assertEqual((True, None), pool.take(a, [], ()))
        ok, why = pool.take(b, [], ())
        self.assertFalse(ok)
        self.assertIn('c01 has 1 move(s) out', why)
        pool.release(a)
        self.assertEqual((True, None), pool.take(b, [], ()))
        # someone else's unfinished migration out of c02 takes its slot;
        # a finished or cold one waiting for its confirm does not
        other = nova.add('other', host='c02')
        m = nova.add_migration(other.id, status='running', source='c02',
                               dest='c03')
        c = item_on(nova, 'c', host='c02')
        self.assertFalse(pool.take(c, [m], ())[0])
        for status in ('completed', 'error', 'finished'):
            m.status = status
            self.assertTrue(pool.take(c, [m], ())[0], status)
            pool.release(c)

    def test_destination_is_the_first_candidate_with_a_free_slot(self):
        nova = fakes.FakeNova(hosts=('c01', 'c02', 'c03', 'c04'))
        pool = slots.Slots(per_source=3, per_dest=1)
        a = item_on(nova, 'a', candidates=('c02', 'c03'))
        b = item_on(nova, 'b', candidates=('c02', 'c03'))
        c = item_on(nova, 'c', candidates=('c02', 'c03'))
        self.assertEqual((True, 'c02'), pool.take(a, [], ('c02', 'c03')))
        self.assertEqual((True, 'c03'), pool.take(b, [], ('c02', 'c03')))
        ok, why = pool.take(c, [], ('c02', 'c03'))
        self.assertFalse(ok)
        self.assertEqual('no free slot into c02, c03', why)
        # ours, once the scheduler named where it went, counts there too
        pool.release(a)
        d = item_on(nova, 'd', host='c04')
        self.assertEqual((True, None), pool.take(d, [], ()))
        m = nova.add_migration(d.id, status='running', source='c04',
                               dest='c02')
        self.assertFalse(pool.take(c, [m], ('c02',))[0])
        self.assertEqual(2, pool.most_out)
        self.assertEqual(1, pool.most_in)

    def test_a_pick_counts_the_clouds_migrations_once(self):
        # Issue 24: each ready item counted every migration of the cloud
        # again (20 waiting items x 2,000 records on a big cloud, every
        # loop of every executor of the wave); now once per list, until a
        # claim changes.
        nova = fakes.FakeNova(hosts=('c01', 'c02', 'c03'))
        pool = slots.Slots(per_source=1, per_dest=1)
        first = item_on(nova, 'first')
        self.assertTrue(pool.take(first, [], ())[0])
        waiting = [item_on(nova, 'w%d' % n) for n in range(20)]
        other = nova.add('other', host='c02')
        cloud = [nova.add_migration(other.id, status='completed',
                                    source='c02', dest='c03')
                 for _ in range(50)]
        snap = engine.Snapshot('c01', [], [], cloud=cloud)
        ctx = engine.Context(nova.compute, 'c01', features=features(nova))
        real = slots.unfinished
        counted = []

        def unfinished(m):
            counted.append(m)
            return real(m)
        self.useFixture(fixtures.MockPatchObject(slots, 'unfinished',
                                                 unfinished))
        self.assertIsNone(slots.pick(pool, waiting, snap, ctx, 0.0,
                                     lambda item: 60.0))
        # once for the slots, once for what the wait is measured from
        # (``Slots.moment``); not once per waiting item
        self.assertEqual(2 * len(cloud), len(counted))
        # a claim released: counted again, and the next item starts
        pool.release(first)
        self.assertIs(waiting[0], slots.pick(pool, waiting, snap, ctx, 0.0,
                                             lambda item: 60.0))

    def test_destinations(self):
        nova = fakes.FakeNova()
        ctx = engine.Context(nova.compute, 'c01', features=features(nova))
        item = item_on(nova, 'a', candidates=('c02', 'c03', 'c01'))
        self.assertEqual(('c02', 'c03'), slots.destinations(ctx, item, True))
        item.data['failed_hosts'] = ['c02']
        item.data['retry_host'] = 'c03'
        self.assertEqual(('c03',), slots.destinations(ctx, item, True))
        item.data.clear()
        item.data['anti_affinity'] = True
        self.assertEqual(('c02',), slots.destinations(ctx, item, True))
        target = engine.Context(nova.compute, 'c01', features=features(nova),
                                target_host='c03')
        self.assertEqual(('c03',), slots.destinations(target, item, False))
        # before 2.56 a cold move names no host: the scheduler chooses
        old = fakes.FakeNova(max_version='2.40')
        ctx = engine.Context(old.compute, 'c01', features=features(old))
        self.assertEqual(('c02',), slots.destinations(ctx, item, True))
        self.assertEqual((), slots.destinations(ctx, item, False))


class TestDrainSlots(testtools.TestCase):

    def test_one_out_at_a_time_and_never_queued_in_nova(self):
        # nova would queue the second live migration of a source (its
        # max_concurrent_live_migrations 1): the drain never issues it
        # while the first runs, though --max-parallel allows four.
        nova = fakes.FakeNova()
        nova.live_slots = 1
        for name in 'abcd':
            nova.add(name, script=['slow:3'])
        watch = Watch(nova)
        report, events = run_drain(nova, max_parallel=4)
        self.assertTrue(report.ok, [i.full_message() for i in report.items])
        self.assertEqual(1, watch.most_out)
        self.assertEqual(0, watch.queued_behind)
        self.assertTrue(any(e.kind == 'progress' and 'waiting for a slot'
                            in e.message for e in events))

    def test_more_source_slots_run_more_at_once(self):
        nova = fakes.FakeNova()
        for name in 'abcd':
            nova.add(name, script=['slow:3'])
        watch = Watch(nova)
        report, _ = run_drain(nova, max_parallel=4, source_slots=2)
        self.assertTrue(report.ok)
        self.assertEqual(2, watch.most_out)

    def test_a_busy_destination_waits_for_its_inbound_move(self):
        # Someone else's live migration into c02, the only target: the
        # drain starts nothing into c02 until it ends.
        nova = fakes.FakeNova()
        other = nova.add('other', host='c03')
        m = nova.add_migration(other.id, status='running', source='c03',
                               dest='c02', migration_type='live-migration')
        m._outcome, m._step = 'slow:4', len(fakes.LIVE_STEPS)
        nova.add('a')
        report, events = run_drain(nova, target_host='c02')
        self.assertTrue(report.ok, [i.full_message() for i in report.items])
        ours = [x for x in nova.migrations.values()
                if x.server_id != other.id]
        self.assertEqual(['c02'], [x.dest_compute for x in ours])
        self.assertIn('waiting for a slot: no free slot into c02', [
            e.message for e in events if e.kind == 'progress'])
        self.assertEqual('completed', m.status)

    def test_usage(self):
        nova = fakes.FakeNova()
        for bad in ({'source_slots': 0}, {'dest_slots': 0}):
            self.assertRaises(Exception, drain.validate, nova.compute,
                              ['c01'], drain.Options(hosts=('c01',), **bad))

    def test_dry_run_shows_each_moves_place_in_its_queue(self):
        nova = fakes.FakeNova()
        for name in 'abc':
            nova.add(name)
        report, _ = run_drain(nova, dry_run=True, target_host='c02')
        self.assertEqual([1, 2, 3], [i.data['queue']
                                     for i in report.items])
        self.assertEqual({'c02'}, {i.destination for i in report.items})


class TestWavePoll(testtools.TestCase):

    def poll(self, nova, hosts):
        clock = FakeClock()
        return wave.WavePoll(nova.compute, hosts, features(nova),
                             interval=1.0, clock=clock), clock

    def test_two_requests_per_poll_however_many_hosts(self):
        hosts = ['c%02d' % i for i in range(1, 11)]
        nova = fakes.FakeNova(hosts=hosts + ['c11'])
        for host in hosts:
            nova.add('on-' + host, host=host)
        poll, clock = self.poll(nova, hosts)
        views = [poll.view(h) for h in hosts]
        [v.servers for v in views]
        first = poll.calls   # the servers of each host listed once, in full
        self.assertEqual(1 + len(hosts), first)
        for _ in range(5):
            clock.wait(1.0)
            for h in hosts:
                poll.view(h).servers
        self.assertEqual(first + 5 * 2, poll.calls)
        self.assertEqual(6, poll.polls)

    def test_a_view_within_the_interval_is_the_last_poll(self):
        nova = fakes.FakeNova()
        poll, clock = self.poll(nova, ['c01', 'c02'])
        poll.view('c01')
        clock.wait(0.5)
        poll.view('c02')
        self.assertEqual(1, poll.polls)
        poll.view('c02', fresh=True)   # a retry looks afresh
        self.assertEqual(2, poll.polls)

    def test_changes_move_servers_between_views(self):
        nova = fakes.FakeNova()
        a = nova.add('a', host='c01')
        b = nova.add('b', host='c02')
        poll, clock = self.poll(nova, ['c01', 'c02'])
        self.assertEqual({a.id}, set(poll.view('c01').servers))
        a.compute_host = 'c03'    # moved off the wave's hosts
        # deleted: nova lists it DELETED when asked for changes
        nova.servers[b.id] = fakes.server(name='b', host='c02',
                                          status='DELETED', id=b.id)
        clock.wait(1.0)
        self.assertEqual({}, poll.view('c01').servers)
        self.assertEqual({}, poll.view('c02').servers)

    def test_changes_since_reaches_back_a_margin(self):
        nova = fakes.FakeNova()
        now = datetime.datetime(2026, 12, 4, 12, 0, 0)
        clock = FakeClock()
        poll = wave.WavePoll(nova.compute, ['c01'], features(nova),
                             clock=clock, now=lambda: now)
        poll.view('c01').servers
        clock.wait(2.0)
        poll.view('c01').servers
        kw = nova.compute.migrations.call_args.kwargs
        self.assertEqual('2026-12-04T11:59:00', kw['changes_since'][:19])
        kw = nova.compute.servers.call_args.kwargs
        self.assertEqual('2026-12-04T11:59:00', kw['changes_since'][:19])


class TestWaveAtOnce(testtools.TestCase):
    """Issue 24 item 3 on the unit fakes: the hosts of a wave drained at
    once, on one poll."""

    def two_host_wave(self, hosts, script, **kw):
        """A wave of c01 and c02 (3 servers each, their moves
        ``script``), the last host of ``hosts`` the default
        destination; ``(report, watch)``."""
        tmp = self.useFixture(fixtures.TempDir()).path
        nova = fakes.FakeNova(hosts=hosts, default_dest=hosts[-1])
        for svc in nova.services.values():
            svc.updated_at = test_maintain.FUTURE
        for host in ('c01', 'c02'):
            for n in range(3):
                nova.add('%s-%d' % (host, n), host=host, script=list(script))
        watch = Watch(nova)
        req = test_maintain.request(tmp, hosts=('c01', 'c02'), max_hosts=2,
                                    **kw)
        with test_maintain.one_owner():
            report = maintain.run(fakes.FakeCloud(nova), req)
        self.assertTrue(report.ok, [h.row() for h in report.hosts])
        return report, watch

    def test_two_hosts_of_a_wave_move_at_the_same_time(self):
        report, watch = self.two_host_wave(('c01', 'c02', 'c03', 'c04'),
                                           ['slow:4'])
        self.assertEqual([1, 1], [h.wave for h in report.hosts])
        self.assertEqual(2, watch.sources_at_once)
        self.assertEqual(1, watch.most_out)
        self.assertEqual(1, watch.most_in)
        self.assertEqual(0, watch.queued_behind)

    def test_a_waves_moves_home_share_the_slots(self):
        # Issue 24: with --migrate-back, each host's undrain counted its
        # slots on its own poll (the migrations touching its host): two
        # hosts of a wave both bringing servers home from c03 saw none of
        # each other's moves out of c03, and started two at once (nova
        # queued one).  Now the wave's undrains share one poll of the
        # cloud and one slot pool, as its drains do.
        report, watch = self.two_host_wave(('c01', 'c02', 'c03'),
                                           ['slow:3', 'slow:3'],
                                           migrate_back=True)
        self.assertEqual([3, 3], [h.moved_back for h in report.hosts])
        self.assertEqual(1, watch.most_out)
        self.assertEqual(1, watch.most_in)
        self.assertEqual(0, watch.queued_behind)

    def test_a_signal_during_the_wave_steps_ends_them_all(self):
        # SIGTERM (as Ctrl-C) while both hosts' steps run in their
        # threads: both process groups end, both rows say interrupted,
        # exit 130.  (Waiting with Thread.join, the interrupt left a
        # thread marked stopped while it ran: the run raised KeyError.)
        tmp = self.useFixture(fixtures.TempDir()).path
        nova = fakes.FakeNova(hosts=('c01', 'c02', 'c03', 'c04'))
        for svc in nova.services.values():
            svc.updated_at = test_maintain.FUTURE
        req = test_maintain.request(tmp, hosts=('c01', 'c02'), max_hosts=2,
                                    exec_cmd='sleep 30')
        seen = []
        timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM))
        self.addCleanup(timer.cancel)

        def term_once_both_run(event):
            seen.append(event)
            if not timer.is_alive() and not timer.finished.is_set() and sum(
                    1 for e in seen if e.step == 'exec'
                    and e.kind == 'start') == 2:
                timer.start()
        start = time.monotonic()
        with test_maintain.one_owner():
            report = maintain.run(fakes.FakeCloud(nova), req,
                                  events=term_once_both_run)
        self.assertLess(time.monotonic() - start, 20)
        self.assertEqual(130, report.exit_status)
        self.assertEqual(['interrupted'] * 2,
                         [h.result for h in report.hosts])
        self.assertEqual(2, sum(1 for e in seen if e.kind == 'interrupt'
                                and e.step == 'exec'))


class TestGuardOnlyBeforeAStart(testtools.TestCase):

    def test_the_lease_is_checked_before_starts_not_while_waiting(self):
        # The guard (the host lease's check: one API call) ran before
        # every attempt to start, also when no slot was free: with ready
        # items waiting for a slot, each loop of the executor made a call,
        # whose end woke the loop again (benchmarks/drain.py --realistic:
        # 14,379 requests for 30 servers).  Now once per start.
        nova = fakes.FakeNova()
        for name in 'abc':
            nova.add(name, script=['slow:3'])
        checks = []
        ctx, poller, ex = test_engine.make_executor(
            nova, guard=lambda: checks.append(1), slots=slots.Slots())
        items = test_engine.live_items(nova)
        ex.run(items)
        self.assertEqual(['moved'] * 3, [i.result for i in items])
        self.assertEqual(3, len(checks))


class TestSlotWaitSaidOnce(testtools.TestCase):

    def test_a_reason_to_wait_is_said_once_per_move(self):
        # Clean run 26: an undrain's move waited 'no free slot into c01',
        # then for its source, then for c01 again: the same line twice.
        nova = fakes.FakeNova()
        ctx = engine.Context(nova.compute, 'c01', features=features(nova))
        said = []
        ctx.emit = lambda kind, message, item=None, **kw: said.append(message)
        pool = slots.Slots()
        a, c = [item_on(nova, n, candidates=('c02',)) for n in 'ac']
        b = item_on(nova, 'b', host='c03')
        pool.take(a, [], ('c02',))           # c01 out is busy
        for now in range(3):
            slots.pick(pool, [c], None, ctx, now, lambda i: 600)
            pool.release(a)
            pool.take(b, [], ('c02',))       # now c02 in is busy
            slots.pick(pool, [c], None, ctx, now, lambda i: 600)
            pool.release(b)
            pool.take(a, [], ('c02',))
        self.assertEqual(sorted(set(said)), sorted(said))
        self.assertEqual(2, len(said))
