"""The drain's escalation ladder, owner policy and blame on the minicloud
(issue 12 items 3, 4 and 6).

Servers misbehave through the rig's metadata ``minicloud:live-migration``
(``never-converge``: runs until force-completed or aborted; ``fail``: fails
half-way, ACTIVE on its source).  nova's ``max_concurrent_live_migrations``
is 1 on the rig, so a second live migration from c01 waits ``queued``:
nova refuses to force-complete it, which is how the ladder's second step is
reached for real.  Small timeouts keep every drain short.
"""

import json
import time

from testtools import content

from tests.functional import test_drain_inflight

POLICY = 'nodeops:maintenance'


class TestDrainLadder(test_drain_inflight.DrainRigTestCase):
    """One class: one turn of the rig lock for all of them."""

    def cold_migrations(self, server_id):
        return [m for m in self.admin_conn.compute.migrations(
            instance_uuid=server_id, migration_type='migration')]

    def actions(self, server_id):
        return [a.action for a in
                self.admin_conn.compute.server_actions(server_id)]

    def policy(self, server_id, value):
        self.admin_conn.compute.set_server_metadata(server_id,
                                                    **{POLICY: value})

    # -- item 3: the ladder ------------------------------------------------

    def test_ladder_force_complete_then_abort_then_another_host(self):
        blocker, srv = self.servers(2, 'never-converge')
        for s in (blocker, srv):
            self.addCleanup(self.abort_if_running, s.id)
        # --source-slots 2: the drain's slot scheduler would not issue the
        # move while the blocker holds c01's one slot; here it must wait
        # queued in nova.
        args = ('--timeout', '5', '--step-timeout', '10', '--on-timeout',
                'force-complete', '--on-timeout', 'abort', '--retries', '1',
                '--exclude', blocker.id, '--allow-skipped',
                '--source-slots', '2')
        plan, _, _ = self.drain('--dry-run', *args)
        self.assertEqual(['live', 'force-complete after 5s',
                          'abort after 10s more',
                          'left running after 10s more',
                          'retry 1 time(s) on another host'],
                         plan[srv.id]['Ladder'])
        # The blocker's live migration holds c01's only slot (nova's
        # max_concurrent_live_migrations is 1 on the rig), so the drain's
        # migration waits queued and nova cannot force-complete it: the
        # ladder's abort comes next, at once.  Once it has, the slot is
        # freed, so the retry on another host runs and force-complete
        # finishes it.  (Two drained servers racing for the slot made the
        # order depend on which timeout fired first: flaky.)
        self.admin_conn.compute.live_migrate_server(
            blocker.id, host=None, block_migration='auto')
        self.wait_migration(blocker.id, ('running',))
        proc = self.popen_drain(*args)
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            if any(m.status == 'cancelled'
                   for m in self.live_migrations(srv.id)):
                break
            time.sleep(0.3)
        self.abort_if_running(blocker.id)
        out, err = proc.communicate(timeout=300)
        self.addDetail('drain-stderr', content.text_content(err))
        self.assertEqual(0, proc.returncode, err)
        rows = {r['ID']: r for r in json.loads(out)}
        row = rows[srv.id]
        self.assertEqual('moved', row['Result'], row)
        steps = row['Steps']
        self.assertRegex(steps[0], r'^force-complete after [5-9](\.\d)?s not '
                         r'possible \(migration \d+ queued\)$')
        # at once, not --step-timeout later
        self.assertRegex(steps[1], r'^abort after [5-9](\.\d)?s ')
        self.assertIn('cancelled', steps[2])
        self.assertIn('retry 1 of 1 (on c0', steps[2])
        self.assertRegex(steps[3], r'^force-complete after [5-9](\.\d)?s '
                         r'\(migration \d+ running\)')
        for step in steps:
            self.assertIn(step, row['Message'])
        migs = sorted(self.live_migrations(srv.id), key=lambda m: m.id)
        self.assertEqual(['cancelled', 'completed'],
                         [m.status for m in migs])
        # the retry named another host than the aborted one
        self.assertNotEqual(migs[0].dest_compute, migs[1].dest_compute)
        self.assertIn('on %s)' % migs[1].dest_compute, steps[2])
        now = self.get(srv.id)
        self.assertEqual('ACTIVE', now.status)
        self.assertNotEqual(self.source, now.compute_host)
        self.assertIn('timeout', err)
        # the excluded blocker stayed, ACTIVE on the source once aborted
        self.assertNotEqual('moved', rows[blocker.id]['Result'])
        self.wait_migration(blocker.id, ('cancelled',))
        self.assertEqual(self.source, self.get(blocker.id).compute_host)

    def test_time_queued_in_nova_is_not_counted(self):
        # Issue 24 item 2.  nova runs one live migration per source on the
        # rig and queues the rest: three servers of 6 s each, issued at
        # once, end about 6, 12 and 18 s after the issue.  --timeout 10
        # counted from the issue aborted the last two (the second while
        # it ran, the third while it waited queued); counted from the
        # time nova works on each, none is late.
        # (--source-slots 3: issued at once, past the slot scheduler's
        # default of one, so that nova queues them.)
        servers = self.servers(3, 'slow:6')
        rows, err, took = self.drain(
            '--max-parallel', '3', '--timeout', '10', '--on-timeout',
            'abort', '--retries', '0', '--source-slots', '3')
        for s in servers:
            self.assertEqual('moved', rows[s.id]['Result'], rows[s.id])
            self.assertEqual([], rows[s.id]['Steps'])
            self.assert_moved_once(s.id)
        self.assertNotIn('timeout', err)
        # they did run one after the other, past --timeout in all
        self.assertGreater(took, 17)

    def test_timeout_per_gib(self):
        # Issue 24 item 2: a deadline per GiB the migration copies.  The
        # rig's flavor has 64 MiB of memory and a 1 GiB root disk, copied
        # (image-backed, --block-migration auto): at 20 s per GiB, 21.25 s.
        # A 10 s migration outlives --timeout 5, not its own deadline.
        [srv] = self.servers(1, 'slow:10')
        args = ('--timeout', '5', '--timeout-per-gib', '20', '--on-timeout',
                'abort', '--retries', '0')
        plan, _, _ = self.drain('--dry-run', *args)
        self.assertRegex(plan[srv.id]['Ladder'][1],
                         r'^abort after 21(\.\d)?s \(1\.1 GiB x 20s\)$')
        rows, err, took = self.drain(*args)
        self.assertEqual('moved', rows[srv.id]['Result'], rows[srv.id])
        self.assert_moved_once(srv.id)
        self.assertGreater(took, 9)

    def test_stall_timeout(self):
        # Issue 24 item 2: a progress timeout.  A never-converging guest's
        # bytes still to copy hover at a third of its memory: with
        # --stall-timeout 6 the ladder aborts it long before --timeout
        # 120.  A slow migration that makes progress (its disk, then its
        # memory) is not stalled.
        [stuck] = self.servers(1, 'never-converge')
        [fine] = self.servers(1, 'slow:8')
        self.addCleanup(self.abort_if_running, stuck.id)
        rows, err, took = self.drain(
            '--timeout', '120', '--stall-timeout', '6', '--on-timeout',
            'abort', '--retries', '0', expect=1)
        row = rows[stuck.id]
        self.assertEqual('failed', row['Result'], row)
        self.assertRegex(row['Steps'][0], r'^stalled: \d+ MiB still to '
                         r'copy, no progress for [6-9](\.\d)?s$')
        self.assertIn('cancelled', row['Message'])
        self.assertEqual('moved', rows[fine.id]['Result'], rows[fine.id])
        self.assertEqual([], rows[fine.id]['Steps'])
        self.assert_moved_once(fine.id)
        self.assertLess(took, 90)

    def test_fail_retried_elsewhere_then_cold_only_when_allowed(self):
        self.timing('on')
        owner_ok, operator_ok = self.servers(2, 'fail')
        self.policy(owner_ok.id, 'cold')
        # No --fallback: only the server whose owner said cold goes cold.
        rows, _, _ = self.drain('--retries', '1', expect=1)
        row = rows[owner_ok.id]
        self.assertEqual('moved', row['Result'], row)
        self.assertEqual('cold', row['Method'], row)
        self.assertEqual('cold', row['Policy'])
        self.assertIn('cold fallback (owner policy nodeops:maintenance=cold)',
                      row['Message'])
        live = sorted(self.live_migrations(owner_ok.id), key=lambda m: m.id)
        self.assertEqual(['failed', 'failed'], [m.status for m in live])
        self.assertNotEqual(live[0].dest_compute, live[1].dest_compute)
        self.assertEqual(['confirmed'], [
            m.status for m in self.cold_migrations(owner_ok.id)])
        now = self.get(owner_ok.id)
        self.assertEqual(('ACTIVE', None), (now.status, now.task_state))
        self.assertNotEqual(self.source, now.compute_host)
        # never silently cold: the other one failed and stayed
        row = rows[operator_ok.id]
        self.assertEqual('failed', row['Result'], row)
        self.assertEqual([], self.cold_migrations(operator_ok.id))
        self.assertEqual('move', row['Blame'])
        self.assertEqual(self.source, self.get(operator_ok.id).compute_host)
        # The operator's --fallback cold: it goes cold too, ACTIVE again.
        rows, _, _ = self.drain('--retries', '0', '--fallback', 'cold')
        row = rows[operator_ok.id]
        self.assertEqual('moved', row['Result'], row)
        self.assertIn('cold fallback (--fallback cold)', row['Message'])
        now = self.get(operator_ok.id)
        self.assertEqual(('ACTIVE', None), (now.status, now.task_state))
        self.assertNotEqual(self.source, now.compute_host)

    # -- item 4: owner policy ----------------------------------------------

    def test_owner_stop_by_tag(self):
        [srv] = self.servers(1)
        self.openstack('--os-compute-api-version', '2.26', 'server', 'set',
                       '--tag', '%s=stop' % POLICY, srv.id)
        plan, _, _ = self.drain('--dry-run')
        self.assertEqual('stop-cold', plan[srv.id]['Method'])
        self.assertEqual(['stop', 'cold-migrate', 'confirm', 'start'],
                         plan[srv.id]['Ladder'])
        rows, _, _ = self.drain()
        row = rows[srv.id]
        self.assertEqual(('moved', 'stop'), (row['Result'], row['Policy']),
                         row)
        now = self.get(srv.id)
        self.assertEqual(('ACTIVE', None), (now.status, now.task_state))
        self.assertNotEqual(self.source, now.compute_host)
        self.assertEqual([], self.live_migrations(srv.id))
        self.assertEqual(['confirmed'], [
            m.status for m in self.cold_migrations(srv.id)])
        # it went through SHUTOFF: nova's own record of what was done
        done = self.actions(srv.id)
        for action in ('stop', 'migrate', 'start'):
            self.assertIn(action, done)
        self.assertIn('stopped (owner policy stop)', row['Steps'])

    def test_owner_skip_needs_the_operator(self):
        skip, junk = self.servers(2)
        self.policy(skip.id, 'skip')
        self.policy(junk.id, 'SKIP please')
        rows, _, _ = self.drain('--honour-skip', '--allow-skipped')
        row = rows[skip.id]
        self.assertEqual(('skipped', 'skip'), (row['Result'], row['Policy']))
        self.assertIn('honoured (--honour-skip)', row['Message'])
        self.assertIsNone(row['Blame'])
        self.assertEqual(self.source, self.get(skip.id).compute_host)
        # an unknown value is ignored, said in the row
        row = rows[junk.id]
        self.assertEqual(('moved', None), (row['Result'], row['Policy']))
        self.assertIn("owner policy nodeops:maintenance='SKIP please' "
                      "ignored", row['Message'])
        # Without --honour-skip the owner cannot keep it on the host.
        rows, _, _ = self.drain()
        row = rows[skip.id]
        self.assertEqual('moved', row['Result'], row)
        self.assertIn('owner asked to skip', row['Message'])
        self.assertIn('moved anyway', row['Message'])
        self.assertNotEqual(self.source, self.get(skip.id).compute_host)

    # -- item 6: blame -----------------------------------------------------

    def test_blame_error_before_vs_move_failure(self):
        self.timing('on')
        broken, bad = self.servers(2)
        self.admin_conn.compute.reset_server_state(broken.id, 'error')
        self.wait_for_server(broken.id, 'ERROR')
        self.admin_conn.compute.set_server_metadata(
            bad.id, **{test_drain_inflight.BEHAVIOUR: 'fail'})
        rows, _, _ = self.drain('--retries', '0', expect=1)
        row = rows[broken.id]
        self.assertEqual(('skipped', 'pre-existing'),
                         (row['Result'], row['Blame']), row)
        self.assertIn('ERROR before the drain', row['Blame Detail'])
        row = rows[bad.id]
        self.assertEqual(('failed', 'move'), (row['Result'], row['Blame']),
                         row)
        detail = row['Blame Detail']
        [mig] = self.live_migrations(bad.id)
        self.assertIn('migration %s failed' % mig.id, detail)
        # nova's instance action of the failed move, with its events
        self.assertIn('instance action live-migration req-', detail)
        self.assertIn('compute_live_migration', detail)
