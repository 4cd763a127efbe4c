"""The host lease (ops/lease.py) and every command honouring it (issue 20
item 4), on the fakes.  The rig proves the same in
tests/functional/test_lease.py."""

import datetime
import os
import socket
import subprocess
import threading
from unittest import mock

import testtools

from osc_nodeops import errors
from osc_nodeops import timeutil
from osc_nodeops.ops import drain
from osc_nodeops.ops import lease
from osc_nodeops.ops import recover
from osc_nodeops.ops import runtime
from osc_nodeops.ops.drain import run as drain_run
from tests.unit import fakes
from tests.unit.test_drain import MUTATORS
from tests.unit.test_drain import drained_away
from tests.unit.test_engine import FakeClock
from tests.unit.test_recover import RecoverNova
from tests.unit.test_recover import conn_for

OTHER = 'ops@other-machine:4242'


def fake_runtime():
    return FakeClock().runtime()


def legacy_held(nova, host='c01', owner=OTHER):
    """What an earlier version's drain leaves: its tag in the reason."""
    svc = nova.services[host]
    svc.status = 'disabled'
    svc.disabled_reason = lease.with_legacy('maintenance', owner)
    return svc


def entry(owner=OTHER, kind='drain', renewed=None, ttl=lease.TTL,
          token='feedfacecafe'):
    now = timeutil.api_time(renewed or timeutil.utcnow())
    return lease.Holder(owner=owner, since=now, kind=kind, token=token,
                        renewed=now, ttl=ttl)


def held_by_other(nova, host='c01', **kw):
    lease.Store(nova.compute).put(host, entry(**kw))


def other_pid():
    """A pid that is not ours and, for the lease's ``gone``, alive: our
    parent (the test runner)."""
    return os.getppid()


class TestProtocol(testtools.TestCase):

    def test_acquire_write_wait_read_back_release(self):
        nova = fakes.FakeNova()
        slept = []
        # The clock stands still: the wait is the whole settle.
        lk = lease.Lease(nova.compute, 'c01', kind='drain', heartbeat=False,
                         settle=(1.0, 2.0),
                         runtime=FakeClock().runtime(sleep=slept.append))
        lk.acquire()
        self.assertEqual(1, len(slept))
        self.assertTrue(1.0 <= slept[0] <= 2.0)
        held = lease.holder(nova.compute, 'c01')
        self.assertEqual(lk.token, held.token)
        self.assertEqual(lease.owner_name(), held.owner)
        self.assertEqual(lease.TTL, held.ttl)
        lk.check()
        lk.release()
        self.assertIsNone(lease.holder(nova.compute, 'c01'))

    def test_a_waves_leases_wait_once(self):
        # Issue 24: the leases of a wave's hosts were taken one after the
        # other, each with its settle wait (1-2 s): a wave of 4 waited
        # about 6 s before its first move.  One wait for all of them.
        nova = fakes.FakeNova(hosts=('c01', 'c02', 'c03', 'c04'))
        slept = []
        rt = runtime.Runtime(sleep=slept.append)
        leases = lease.acquire_all([lease.Lease(
            nova.compute, h, heartbeat=False, settle=(1.0, 2.0), runtime=rt)
            for h in ('c01', 'c02', 'c03')])
        self.assertEqual(1, len(slept))
        for lk in leases:
            self.assertEqual(lk.token, lease.holder(nova.compute,
                                                    lk.host).token)
            lk.release()
        # All or none: a live lease of another run on one host refuses
        # the wave, and the entries written for the others are dropped.
        held_by_other(nova, 'c03')
        self.assertRaises(lease.LeaseRefused, lease.acquire_all, [
            lease.Lease(nova.compute, h, heartbeat=False, runtime=rt)
            for h in ('c01', 'c02', 'c03', 'c04')])
        self.assertIsNone(lease.holder(nova.compute, 'c01'))
        self.assertIsNone(lease.holder(nova.compute, 'c02'))
        self.assertIsNone(lease.holder(nova.compute, 'c04'))
        self.assertEqual(OTHER, lease.holder(nova.compute, 'c03').owner)
        # A race lost on one host (another run wrote after us, before the
        # read-back): refused, ours dropped, the winner's kept.
        lease.Store(nova.compute).delete('c03')
        store = lease.Store(nova.compute)

        def overwritten(seconds):
            store.put('c02', entry())
        leases = [lease.Lease(nova.compute, h, heartbeat=False,
                              runtime=runtime.Runtime(sleep=overwritten))
                  for h in ('c01', 'c02')]
        self.assertRaises(lease.LeaseRefused, lease.acquire_all, leases)
        self.assertIsNone(lease.holder(nova.compute, 'c01'))
        self.assertEqual(OTHER, lease.holder(nova.compute, 'c02').owner)

    def test_a_refused_wave_puts_back_what_it_overwrote(self):
        # Fails on b37f8bd: a wave refused on one host (a live lease)
        # deleted the entries it had written over on the others, among
        # them a dead run's (expired): what a later takeover reads (when
        # that run started) was lost, though nothing was done.
        nova = fakes.FakeNova(hosts=('c01', 'c02', 'c03'))
        old = timeutil.utcnow() - datetime.timedelta(seconds=lease.TTL + 5)
        held_by_other(nova, 'c01', renewed=old, token='deadbeef0001')
        held_by_other(nova, 'c02')
        self.assertRaises(lease.LeaseRefused, lease.acquire_all, [
            lease.Lease(nova.compute, h, heartbeat=False,
                        runtime=fake_runtime()) for h in ('c01', 'c02')])
        back = lease.holder(nova.compute, 'c01')
        self.assertEqual(('deadbeef0001', OTHER), (back.token, back.owner))
        self.assertTrue(back.expired())
        # The same when the caller withdraws (its pre-pass refused).
        lease.Store(nova.compute).delete('c02')
        taking = lease.write_all([
            lease.Lease(nova.compute, h, heartbeat=False,
                        runtime=fake_runtime()) for h in ('c01', 'c02')])
        self.assertNotEqual('deadbeef0001',
                            lease.holder(nova.compute, 'c01').token)
        taking.withdraw()
        self.assertEqual('deadbeef0001',
                         lease.holder(nova.compute, 'c01').token)
        self.assertIsNone(lease.holder(nova.compute, 'c02'))

    def test_two_writers_racing_exactly_one_holds(self):
        # Both read the host free before either writes; each reads back
        # after its delay, when both have written: the last write is what
        # both read back, so exactly one holds it.
        nova = fakes.FakeNova()
        both_read = threading.Barrier(2, timeout=10)
        written = {'a': threading.Event(), 'b': threading.Event()}

        class Racing(lease.Store):
            reads = 0

            def get(self, host):
                value = super().get(host)
                self.reads += 1
                if self.reads == 1:
                    both_read.wait()
                return value

        def runner(name, other, out):
            store = Racing(nova.compute)
            real_put = store.put

            def put(host, holder):
                real_put(host, holder)
                written[name].set()
            store.put = put
            lk = lease.Lease(nova.compute, 'c01', owner='%s@m:1' % name,
                             heartbeat=False, store=store,
                             runtime=runtime.Runtime(
                                 sleep=lambda s: written[other].wait(10)))
            try:
                lk.acquire()
                out[name] = lk
            except lease.LeaseRefused as exc:
                out[name] = exc
        out = {}
        threads = [threading.Thread(target=runner, args=('a', 'b', out)),
                   threading.Thread(target=runner, args=('b', 'a', out))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        winners = [n for n, v in out.items() if isinstance(v, lease.Lease)]
        losers = [n for n, v in out.items()
                  if isinstance(v, lease.LeaseRefused)]
        self.assertEqual(1, len(winners), out)
        self.assertEqual(1, len(losers), out)
        self.assertIn('%s@m:1' % winners[0], str(out[losers[0]]))
        self.assertIn('at the same time', str(out[losers[0]]))
        self.assertEqual(out[winners[0]].token,
                         lease.holder(nova.compute, 'c01').token)

    def test_live_lease_refused_in_one_line_naming_the_holder(self):
        nova = fakes.FakeNova()
        held_by_other(nova)
        lk = lease.Lease(nova.compute, 'c01', heartbeat=False)
        exc = self.assertRaises(lease.LeaseRefused, lk.acquire)
        self.assertNotIn('\n', str(exc))
        self.assertIn(OTHER, str(exc))
        self.assertIn('expires', str(exc))
        self.assertIn('--break-lease', str(exc))
        self.assertEqual(OTHER, lease.holder(nova.compute, 'c01').owner)
        nova.compute.set_aggregate_metadata.assert_called_once()  # setup

    def test_break_lease_takes_a_live_one(self):
        nova = fakes.FakeNova()
        held_by_other(nova)
        lk = lease.Lease(nova.compute, 'c01', break_lease=True,
                         heartbeat=False).acquire()
        self.assertIn('--break-lease', lk.note)
        self.assertEqual(OTHER, lk.took.owner)

    def test_expired_lease_taken_over_without_break_lease(self):
        nova = fakes.FakeNova()
        old = timeutil.utcnow() - datetime.timedelta(seconds=lease.TTL + 5)
        held_by_other(nova, renewed=old)
        lk = lease.Lease(nova.compute, 'c01', heartbeat=False).acquire()
        self.assertIn('expired', lk.note)
        self.assertTrue(lk.held)

    def test_ttl_is_the_writers_and_read_through_the_clock(self):
        nova = fakes.FakeNova()
        now = timeutil.utcnow()
        held_by_other(nova, renewed=now, ttl=60)
        late = lambda: now + datetime.timedelta(seconds=59)  # noqa: E731
        self.assertRaises(lease.LeaseRefused, lease.Lease(
            nova.compute, 'c01', heartbeat=False,
            runtime=runtime.Runtime(now=late)).acquire)
        later = lambda: now + datetime.timedelta(seconds=61)  # noqa: E731
        lease.Lease(nova.compute, 'c01', heartbeat=False,
                    runtime=runtime.Runtime(now=later)).acquire()

    def test_a_gone_process_on_this_machine_is_taken_over(self):
        proc = subprocess.Popen(['true'])
        proc.wait()
        nova = fakes.FakeNova()
        held_by_other(nova, owner='ops@%s:%d' % (socket.gethostname(),
                                                 proc.pid))
        lk = lease.Lease(nova.compute, 'c01', heartbeat=False).acquire()
        self.assertIn('that process is gone', lk.note)

    def test_renew_moves_the_expiry_and_check_sees_a_loss(self):
        nova = fakes.FakeNova()
        now = [timeutil.utcnow()]
        lk = lease.Lease(nova.compute, 'c01', heartbeat=False,
                         runtime=runtime.Runtime(
                             now=lambda: now[0])).acquire()
        first = lease.holder(nova.compute, 'c01').expires
        now[0] += datetime.timedelta(seconds=30)
        lk.renew()
        held = lease.holder(nova.compute, 'c01')
        self.assertEqual(first + datetime.timedelta(seconds=30),
                         held.expires)
        self.assertEqual(lk.since, held.since)  # acquisition time stays
        held_by_other(nova)  # someone broke it
        exc = self.assertRaises(lease.LeaseLost, lk.check)
        self.assertIn(OTHER, str(exc))
        lk.renew()  # never writes over the new holder
        lk.release()
        self.assertEqual(OTHER, lease.holder(nova.compute, 'c01').owner)

    def test_heartbeat_renews_while_the_holder_lives(self):
        nova = fakes.FakeNova()
        beats = threading.Event()
        lk = lease.Lease(nova.compute, 'c01', renew_every=0.01)
        real_renew = lk.renew

        def renew():
            real_renew()
            beats.set()
        lk.renew = renew
        lk.acquire()
        self.addCleanup(lk.release)
        self.assertTrue(beats.wait(10))
        lk.release()
        self.assertIsNone(lease.holder(nova.compute, 'c01'))
        calls = nova.compute.set_aggregate_metadata.call_count
        self.assertEqual(calls, nova.compute.set_aggregate_metadata
                         .call_count)  # stopped: no renewal after release

    def test_earlier_versions_lease_honoured_then_removed_on_takeover(self):
        nova = fakes.FakeNova()
        legacy_held(nova)
        held = lease.holder(nova.compute, 'c01', nova.services['c01'])
        self.assertTrue(held.legacy)
        self.assertIsNone(held.expires)
        self.assertRaises(lease.LeaseRefused, lease.Lease(
            nova.compute, 'c01', heartbeat=False).acquire)
        lease.Lease(nova.compute, 'c01', break_lease=True,
                    heartbeat=False).acquire()
        self.assertEqual('maintenance',
                         nova.services['c01'].disabled_reason)
        self.assertEqual('disabled', nova.services['c01'].status)


class TestDrain(testtools.TestCase):

    def test_fresh_lease_read_not_the_record_from_before_the_preflight(self):
        # Fails on 779a0a9: the drain judged the lease on ``service`` as
        # validate() read it, then wrote its own over the other run's.
        nova = fakes.FakeNova()
        nova.add('a')
        stale = fakes.service('c01')  # read before the pre-flight: free
        stale.id = nova.services['c01'].id
        legacy_held(nova)  # meanwhile another operator's drain took it
        exc = self.assertRaises(errors.Refused, drain.drain_host,
                                nova.compute, 'c01', stale, drain.Options(),
                                runtime=fake_runtime())
        self.assertIn(OTHER, str(exc))
        for name in MUTATORS:
            getattr(nova.compute, name).assert_not_called()
        self.assertIn(OTHER, nova.services['c01'].disabled_reason)

    def test_drain_hosts_reads_every_lease_fresh(self):
        # Fails on 779a0a9 (as above, through drain_hosts).
        nova = fakes.FakeNova()
        nova.add('a')
        stale = {h: fakes.service(h) for h in ('c01', 'c02')}
        for h in stale:
            stale[h].id = nova.services[h].id
        legacy_held(nova, 'c02')
        self.assertRaises(errors.Refused, drain.drain_hosts, nova.compute,
                          ['c01', 'c02'], stale, drain.Options(),
                          runtime=fake_runtime())
        for name in MUTATORS:
            getattr(nova.compute, name).assert_not_called()
        self.assertIsNone(lease.holder(nova.compute, 'c01'))  # released

    def test_preflight_runs_inside_the_settle_wait(self):
        # Issue 24 (drain --realistic): the capacity pre-pass (read-only)
        # ran before the leases were written, then the settle wait (1-2 s)
        # came on top of it.  Now the entries are written first and the
        # pre-pass fills the wait: the sleep is what is left of it.
        nova = fakes.FakeNova()
        nova.add('a')
        cloud = fakes.FakeCloud(nova, size={'VCPU': 8, 'MEMORY_MB': 4096,
                                            'DISK_GB': 100})
        clock = FakeClock()
        slept = []
        seen = []
        real = drain_run.refuse_before

        def prepass(*a, **kw):
            seen.append(lease.holder(nova.compute, 'c01'))
            clock.now += 0.4  # the pre-pass's reads take time
            return real(*a, **kw)
        opts = drain.Options(poll_interval=1.0)
        services = drain.validate(nova.compute, ['c01'], opts)
        with mock.patch.object(lease, 'SETTLE', (1.5, 1.5)), \
                mock.patch.object(drain_run, 'refuse_before',
                                  side_effect=prepass):
            [report] = drain.drain_hosts(
                nova.compute, ['c01'], services, opts,
                runtime=clock.runtime(sleep=slept.append), conn=cloud)
        self.assertTrue(report.ok)
        [entry_then] = seen  # our entry, written before the pre-pass
        self.assertEqual(lease.owner_name(), entry_then.owner)
        self.assertAlmostEqual(1.1, slept[0])  # 1.5 - 0.4
        self.assertIsNone(lease.holder(nova.compute, 'c01'))  # released

    def test_preflight_refusal_puts_the_leases_back(self):
        # A drain refused by its pre-pass (a server fits nowhere) changed
        # nothing: the entry it wrote over (a dead run's) is back, no wait.
        nova = fakes.FakeNova()
        nova.add('big', flavor={'vcpus': 1, 'ram': 8192, 'disk': 1,
                                'ephemeral': 0, 'swap': 0,
                                'extra_specs': {}, 'original_name': 'f'})
        cloud = fakes.FakeCloud(nova, size={'VCPU': 8, 'MEMORY_MB': 4096,
                                            'DISK_GB': 100})
        old = timeutil.utcnow() - datetime.timedelta(seconds=lease.TTL + 5)
        held_by_other(nova, 'c01', renewed=old, token='deadbeef0001')
        slept = []
        opts = drain.Options(poll_interval=1.0)
        services = drain.validate(nova.compute, ['c01'], opts)
        with mock.patch.object(lease, 'SETTLE', (1.5, 1.5)):
            [report] = drain.drain_hosts(
                nova.compute, ['c01'], services, opts,
                runtime=FakeClock().runtime(sleep=slept.append), conn=cloud)
        self.assertTrue(report.refused)
        self.assertEqual([], slept)
        self.assertEqual('deadbeef0001',
                         lease.holder(nova.compute, 'c01').token)
        for name in MUTATORS:
            getattr(nova.compute, name).assert_not_called()

    def test_lease_lost_mid_drain_starts_nothing_more(self):
        nova = fakes.FakeNova()
        for n in range(4):
            nova.add('s%d' % n)

        def events(event):
            if event.kind == 'issued' and event.item.server.name == 's0':
                held_by_other(nova)  # another run broke our lease
        report = drain.drain_host(
            nova.compute, 'c01', nova.services['c01'],
            drain.Options(max_parallel=1, poll_interval=1.0),
            events=events, runtime=fake_runtime())
        results = {i.server.name: i.result for i in report.items}
        self.assertEqual('moved', results['s0'])
        self.assertEqual({'not-started'}, {results['s1'], results['s2'],
                                           results['s3']})
        self.assertIn('the lease was lost', report.error)
        self.assertIn(OTHER, report.error)
        self.assertFalse(report.ok)
        self.assertEqual(1, nova.compute.live_migrate_server.call_count)
        self.assertEqual(OTHER, lease.holder(nova.compute, 'c01').owner)

    def test_drain_checks_before_each_batch(self):
        nova = fakes.FakeNova()
        for n in range(3):
            nova.add('s%d' % n)
        checks = []
        real = lease.Lease.check

        def check(self):
            checks.append(self.host)
            return real(self)
        with mock.patch.object(lease.Lease, 'check', check):
            drain.drain_host(nova.compute, 'c01', nova.services['c01'],
                             drain.Options(max_parallel=1),
                             runtime=fake_runtime())
        # before the disable, then before each of the three moves
        self.assertGreaterEqual(len(checks), 4)


class TestUndrain(testtools.TestCase):

    def test_migrate_back_holds_the_lease_while_moving(self):
        # Fails on 779a0a9: undrain cleared the lease (enabled the host)
        # before the moves home; a second drain took the host meanwhile.
        nova = fakes.FakeNova()
        nova.services['c01'].status = 'disabled'
        nova.services['c01'].disabled_reason = 'maintenance'
        drained_away(nova, 'a')
        second = []

        def events(event):
            if event.kind == 'issued' and not second:
                # another operator's drain, from another process
                with mock.patch('os.getpid', other_pid):
                    try:
                        drain.drain_host(
                            nova.compute, 'c01', nova.services['c01'],
                            drain.Options(),
                            runtime=fake_runtime())
                        second.append('proceeded')
                    except errors.Refused as exc:
                        second.append(str(exc))
        report = drain.undrain_host(
            nova.compute, 'c01', nova.services['c01'],
            drain.Options(migrate_back=True, poll_interval=1.0),
            events=events, runtime=fake_runtime())
        [refusal] = second
        self.assertIn('held by another osc-nodeops undrain', refusal)
        self.assertEqual(['moved'], [i.result for i in report.items])
        self.assertEqual('enabled', nova.services['c01'].status)
        self.assertIsNone(lease.holder(nova.compute, 'c01'))  # released

    def test_undrain_refused_while_a_drain_holds_the_host(self):
        nova = fakes.FakeNova()
        nova.services['c01'].status = 'disabled'
        held_by_other(nova)
        self.assertRaises(lease.LeaseRefused, drain.undrain_host,
                          nova.compute, 'c01', nova.services['c01'],
                          drain.Options())
        nova.compute.enable_service.assert_not_called()
        self.assertEqual('disabled', nova.services['c01'].status)


class TestRecoverAll(testtools.TestCase):

    def run_recover(self, nova, **opts):
        return recover.run(conn_for(nova), recover.Options(host='c01',
                                                           **opts),
                           runtime=fake_runtime())

    def test_refuses_a_host_another_live_run_holds(self):
        # Fails on 779a0a9: recover-all ignored leases.
        nova = RecoverNova()
        nova.add('off', status='SHUTOFF', power_state=4)
        legacy_held(nova)
        exc = self.assertRaises(errors.Refused, self.run_recover, nova)
        self.assertIn(OTHER, str(exc))
        self.assertEqual([], nova.calls)

    def test_break_lease_and_release(self):
        nova = RecoverNova()
        nova.add('off', status='SHUTOFF', power_state=4)
        held_by_other(nova)
        self.assertRaises(lease.LeaseRefused, self.run_recover, nova)
        self.assertEqual([], nova.calls)
        report = self.run_recover(nova, break_lease=True)
        self.assertTrue(report.ok, report)
        self.assertIsNone(lease.holder(nova.compute, 'c01'))

    def test_checks_before_each_server(self):
        nova = RecoverNova()
        for n in range(3):
            nova.add('off%d' % n, status='SHUTOFF', power_state=4)

        def events(event):
            if event.kind == 'start' and not nova.aggregates_taken:
                nova.aggregates_taken = True
                held_by_other(nova)
        nova.aggregates_taken = False
        report = recover.run(conn_for(nova), recover.Options(
            host='c01', max_parallel=1, all=True), events=events,
            runtime=fake_runtime())
        self.assertEqual(1, len(nova.calls))
        self.assertFalse(report.ok)
        self.assertTrue(any('the lease was lost' in i.message
                            for i in report.items))

    def test_dry_run_takes_no_lease(self):
        nova = RecoverNova()
        held_by_other(nova)
        self.run_recover(nova, dry_run=True)
        self.assertEqual(OTHER, lease.holder(nova.compute, 'c01').owner)


class TestShown(testtools.TestCase):

    def test_list_and_show_name_the_holder_and_the_expiry(self):
        from osc_nodeops.ops import node_list
        from osc_nodeops.ops import node_show
        nova = fakes.FakeNova()
        renewed = timeutil.utcnow()
        held_by_other(nova, 'c01', renewed=renewed, kind='undrain')
        legacy_held(nova, 'c02', owner='old@m:7')
        nova.compute.aggregates.reset_mock()
        rows = {r.host: r for r in node_list.gather(nova.compute)}
        expires = timeutil.api_time(
            renewed + datetime.timedelta(seconds=lease.TTL))
        self.assertEqual((OTHER, expires), (rows['c01'].lease_owner,
                                            rows['c01'].lease_expires))
        self.assertEqual('old@m:7', rows['c02'].lease_owner)
        self.assertIn('never', rows['c02'].lease_expires)
        self.assertIsNone(rows['c03'].lease_owner)
        self.assertEqual(1, nova.compute.aggregates.call_count)
        info = node_show.gather(nova.compute, 'c01')
        self.assertEqual(('undrain', OTHER, expires), (
            info['Lease Kind'], info['Lease Owner'], info['Lease Expires']))
        self.assertIsNone(node_show.gather(nova.compute, 'c03')[
            'Lease Owner'])
