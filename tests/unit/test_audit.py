"""The post-drain audit (issue 12 item 5): the rules, the settling look,
and the drain's exit status and rows."""

import json
import uuid
from unittest import mock

import testtools

from osc_nodeops.ops.cloud import nova as cloud_nova
from osc_nodeops.ops import runtime
from osc_nodeops.ops.drain import audit
from osc_nodeops.v1 import node
from tests.unit import fakes
from tests.unit.test_drain import run_command


class Clock(object):
    """A clock that moves only when the audit sleeps."""

    def __init__(self):
        self.now = 0.0
        self.slept = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


def cloud(max_version='2.95'):
    nova = fakes.FakeNova(max_version=max_version)
    return nova, fakes.FakeCloud(nova)


def run_audit(conn, host='c01', **kw):
    clock = Clock()
    result = audit.audit_host(
        conn, host, runtime=runtime.Runtime(clock=clock, sleep=clock.sleep),
        **kw)
    return result, clock


def codes(result):
    return [f.code for f in result.findings]


def drain_json(nova, *args):
    rc, app = run_command(node.DrainNode, nova, ['c01', '--poll-interval',
                                                 '0.01', '-f', 'json']
                          + list(args))
    return rc, json.loads(app.stdout.getvalue()), app.stderr.getvalue()


RES = {'MEMORY_MB': 64, 'VCPU': 1}


class TestRules(testtools.TestCase):

    def test_empty_host_is_clean_and_says_what_it_looked_at(self):
        nova, conn = cloud()
        result, clock = run_audit(conn)
        self.assertTrue(result.clean)
        self.assertTrue(result.ok)
        self.assertEqual(1, result.looks)
        self.assertEqual([], clock.slept)
        self.assertIn('running_vms is not offered', result.sources['servers'])
        self.assertIn('2.88', result.sources['servers'])
        self.assertIn('0 allocation(s) on provider(s) rp-c01',
                      result.sources['placement'])
        self.assertIn('c01: clean', result.summary())

    def test_server_still_on_the_host(self):
        nova, conn = cloud()
        srv = nova.add('e', status='ERROR')
        conn.held[srv.id] = RES  # its own allocation: not reported twice
        result, _ = run_audit(conn)
        self.assertEqual([audit.SERVER_ON_HOST], codes(result))
        [f] = result.findings
        self.assertEqual(srv.id, f.server_id)
        self.assertFalse(result.ok)
        result, _ = run_audit(conn, allowed={srv.id})
        self.assertTrue(result.ok)
        self.assertFalse(result.clean)

    def test_unconfirmed_resize_with_its_allocation(self):
        nova, conn = cloud()
        srv = nova.add('r', status='VERIFY_RESIZE', host='c02')
        mig_uuid = str(uuid.uuid4())
        nova.add_migration(srv.id, status='finished', source='c01',
                           dest='c02', migration_type='migration',
                           uuid=mig_uuid)
        conn.extra['c01'] = {mig_uuid: RES}
        result, _ = run_audit(conn)
        [f] = result.findings  # the allocation goes with its migration
        self.assertEqual(audit.UNCONFIRMED_RESIZE, f.code)
        self.assertEqual('openstack server resize confirm %s' % srv.id,
                         f.command)
        self.assertEqual(srv.id, f.server_id)
        self.assertIn('MEMORY_MB=64', f.message)
        self.assertIn(mig_uuid, f.message)

    def test_migrations_not_over(self):
        nova, conn = cloud()
        a = nova.add('a', host='c01')
        b = nova.add('b', host='c02')
        m1 = nova.add_migration(a.id, status='running', source='c01',
                                dest='c02')
        nova.add_migration(b.id, status='pre-migrating', source='c01',
                           dest='c02', migration_type='migration')
        for status in ('completed', 'error', 'confirmed', 'cancelled',
                       'done', 'failed', 'reverted'):
            nova.add_migration(b.id, status=status, source='c01',
                               dest='c02')
        migrations = list(nova.migrations.values())
        found = audit.migration_findings('c01', migrations)
        self.assertEqual([audit.MIGRATION_IN_PROGRESS] * 2,
                         [f.code for f in found])
        self.assertIn('openstack server migration abort %s %s' % (
            a.id, m1.id), found[0].command)
        self.assertNotIn('abort', found[1].command)  # cold: no abort
        self.assertEqual([], audit.migration_findings('c03', migrations))

    def test_orphan_allocation_delete_only_when_gone(self):
        nova, conn = cloud()
        ghost = str(uuid.uuid4())
        conn.extra['c01'] = {ghost: RES}
        result, _ = run_audit(conn)
        [f] = result.findings
        self.assertEqual(audit.ORPHAN_ALLOCATION, f.code)
        self.assertEqual('openstack resource provider allocation delete %s'
                         % ghost, f.command)
        self.assertIsNone(f.server_id)
        nova.compute.get_server.assert_called_once_with(ghost)

    def test_live_server_elsewhere_is_never_deleted(self):
        nova, conn = cloud()
        srv = nova.add('moved', host='c02')
        conn.extra['c01'] = {srv.id: RES}
        result, _ = run_audit(conn)
        [f] = result.findings
        self.assertEqual(audit.STALE_ALLOCATION, f.code)
        self.assertNotIn('allocation delete', f.command)
        self.assertIn('allocation unset --provider rp-c01 %s' % srv.id,
                      f.command)
        self.assertEqual(srv.id, f.server_id)

    def test_consumer_that_is_a_server_on_the_host_now(self):
        nova, conn = cloud()
        srv = nova.add('late', host='c01')
        conn.extra['c01'] = {srv.id: RES}
        result, _ = run_audit(conn, servers=[])  # listed before it came
        self.assertEqual([audit.SERVER_ON_HOST], codes(result))

    def test_before_2_59_a_404_consumer_may_be_a_migration(self):
        nova, conn = cloud(max_version='2.58')
        ghost = str(uuid.uuid4())
        conn.extra['c01'] = {ghost: RES}
        result, _ = run_audit(conn)
        [f] = result.findings
        self.assertEqual(audit.UNKNOWN_CONSUMER, f.code)
        self.assertNotIn('allocation delete', f.command)
        self.assertIn('nova-manage placement audit', f.command)

    def test_a_lookup_error_is_not_a_404(self):
        nova, conn = cloud()
        conn.extra['c01'] = {str(uuid.uuid4()): RES}
        nova.compute.get_server.side_effect = fakes.http_error(403, 'no')
        result, _ = run_audit(conn)
        self.assertEqual([audit.NOT_CHECKED], codes(result))
        self.assertFalse(result.ok)
        self.assertNotIn('delete', str(result.findings[0]))

    def test_a_transient_fault_is_retried(self):
        nova, conn = cloud()
        nova.fail_lists = 1  # the first migration list answers 503
        with mock.patch('time.sleep'):
            result, _ = run_audit(conn)
        self.assertTrue(result.clean, result.findings)

    def test_migration_allocation_settles(self):
        # nova marks a live migration completed, then drops the
        # migration's allocation: the audit looks again.
        nova, conn = cloud()
        srv = nova.add('m', host='c02')
        mig_uuid = str(uuid.uuid4())
        nova.add_migration(srv.id, status='completed', source='c01',
                           dest='c02', uuid=mig_uuid)
        conn.extra['c01'] = {mig_uuid: RES}
        looks = []
        real = conn.placement_get

        def get(url, **kw):
            if url.endswith('/allocations'):
                looks.append(url)
                if len(looks) == 2:
                    conn.extra['c01'] = {}
            return real(url, **kw)
        conn.placement_get = get
        result, clock = run_audit(conn)
        self.assertTrue(result.clean, result.findings)
        self.assertEqual(2, result.looks)
        self.assertEqual([audit.SETTLE_INTERVAL], clock.slept)

    def test_migration_allocation_that_stays(self):
        nova, conn = cloud()
        srv = nova.add('m', host='c02')
        mig_uuid = str(uuid.uuid4())
        nova.add_migration(srv.id, status='completed', source='c01',
                           dest='c02', uuid=mig_uuid)
        conn.extra['c01'] = {mig_uuid: RES}
        result, clock = run_audit(conn)
        [f] = result.findings
        self.assertEqual(audit.MIGRATION_ALLOCATION, f.code)
        self.assertEqual('openstack resource provider allocation delete %s '
                         '(the allocation of a migration that is over)' %
                         mig_uuid, f.command)
        self.assertLessEqual(clock.now, audit.SETTLE)
        self.assertGreater(result.looks, 1)

    def test_failed_migration_allocation_is_not_deleted(self):
        nova, conn = cloud()
        srv = nova.add('m', host='c01')
        mig_uuid = str(uuid.uuid4())
        nova.add_migration(srv.id, status='error', source='c01',
                           dest='c02', uuid=mig_uuid)
        conn.extra['c01'] = {mig_uuid: RES}
        result, _ = run_audit(conn, servers=[])
        f = [f for f in result.findings
             if f.code == audit.MIGRATION_ALLOCATION][0]
        self.assertNotIn('allocation delete', f.command)

    def test_running_vms_below_2_88(self):
        nova, conn = cloud(max_version='2.87')
        hyp = conn.compute.hypervisors.side_effect

        def hypervisors(**kw):
            for h in hyp(**kw):
                h.running_vms = 1 if h.name == 'c01' else 0
                yield h
        conn.compute.hypervisors.side_effect = hypervisors
        result, clock = run_audit(conn)
        self.assertEqual([audit.RUNNING_VMS], codes(result))
        self.assertIn('hypervisor running_vms 1 (compute API 2.87)',
                      result.sources['servers'])
        self.assertIn('openstack hypervisor show c01',
                      result.findings[0].command)
        self.assertGreater(result.looks, 1)  # a stale count gets time

    def test_no_hypervisor_record(self):
        nova, conn = cloud()
        conn.compute.hypervisors.side_effect = lambda **kw: iter([])
        result, _ = run_audit(conn)
        self.assertEqual([audit.NOT_CHECKED], codes(result))

    def test_integer_hypervisor_id_looks_up_the_provider(self):
        nova, conn = cloud(max_version='2.52')
        conn.hyp_ids = {h: str(n) for n, h in enumerate(nova.services, 1)}
        gets = []
        real = conn._get

        def get(url, **kw):
            gets.append(url)
            if url == '/resource_providers?name=c01':
                return fakes._Response({'resource_providers': [
                    {'uuid': '1', 'name': 'c01'}]})
            return real(url, **kw)
        conn.placement_get = get
        result, _ = run_audit(conn)
        self.assertTrue(result.clean, result.findings)
        self.assertIn('/resource_providers?name=c01', gets)
        self.assertIn('/resource_providers/1/allocations', gets)

    def test_calls_are_counted_and_few(self):
        nova, conn = cloud()
        for n in range(20):
            conn.held[nova.add('s%d' % n, host='c02').id] = RES
        result, _ = run_audit(conn, servers=[])
        # migrations, hypervisors, provider by name (the fake's IDs are
        # no UUIDs), provider tree, allocations
        self.assertEqual(5, result.calls)
        nova.compute.get_server.assert_not_called()


class TestDrainCommand(testtools.TestCase):
    """What the operator and a script see."""

    def test_clean_drain_has_a_clean_audit(self):
        nova = fakes.FakeNova()
        srv = nova.add('a')
        rc, rows, err = drain_json(nova)
        self.assertEqual(0, rc, err)
        [row] = rows
        self.assertEqual((srv.id, 'moved', []),
                         (row['ID'], row['Result'], row['Audit']))
        self.assertIn('audit: c01: clean', err)

    def test_orphan_allocation_makes_exit_1_with_its_row(self):
        nova = fakes.FakeNova()
        srv = nova.add('a')
        ghost = str(uuid.uuid4())
        # FakeApp builds the FakeCloud: reach it through the factory
        with mock.patch.object(fakes.FakeCloud, '__init__',
                               _with_extra({'c01': {ghost: RES}})):
            rc, rows, err = drain_json(nova)
        self.assertEqual(1, rc, err)
        by_id = {r['ID']: r for r in rows}
        self.assertEqual('moved', by_id[srv.id]['Result'])
        self.assertEqual([], by_id[srv.id]['Audit'])
        row = by_id[ghost]
        self.assertEqual(('audit', 'leftover', 'c01'),
                         (row['Method'], row['Result'],
                          row['Source Compute']))
        [f] = row['Audit']
        self.assertEqual('orphan-allocation', f['code'])
        self.assertEqual('openstack resource provider allocation delete %s'
                         % ghost, f['command'])
        self.assertIn('c01: 1 leftover(s)', err)

    def test_unconfirmed_resize_of_a_server_moved_by_hand(self):
        nova = fakes.FakeNova()
        srv = nova.add('r', status='VERIFY_RESIZE', host='c02')
        nova.add_migration(srv.id, status='finished', source='c01',
                           dest='c02', migration_type='migration',
                           uuid=str(uuid.uuid4()))
        rc, rows, err = drain_json(nova)
        self.assertEqual(1, rc, err)
        [row] = rows
        self.assertEqual((srv.id, 'leftover'), (row['ID'], row['Result']))
        self.assertEqual('unconfirmed-resize', row['Audit'][0]['code'])
        self.assertIn('openstack server resize confirm %s' % srv.id,
                      row['Message'])
        nova.compute.confirm_server_resize.assert_not_called()

    def test_allow_skipped_keeps_exit_0_for_the_skips_it_allows(self):
        nova = fakes.FakeNova()
        e = nova.add('e', status='ERROR')
        rc, rows, err = drain_json(nova, '--allow-skipped')
        self.assertEqual(0, rc, err)
        [row] = rows
        [f] = row['Audit']
        self.assertEqual(('server-on-host', True, e.id),
                         (f['code'], f['allowed'], f['server_id']))
        rc, rows, err = drain_json(nova)
        self.assertEqual(1, rc)
        self.assertFalse(rows[0]['Audit'][0]['allowed'])

    def test_dry_run_does_not_audit(self):
        nova = fakes.FakeNova()
        nova.add('a')
        with mock.patch.object(audit, 'audit_host') as audit_host:
            rc, rows, err = drain_json(nova, '--dry-run')
        audit_host.assert_not_called()
        self.assertEqual(0, rc)
        self.assertIsNone(rows[0]['Audit'])

    def test_an_audit_that_cannot_look_is_not_clean(self):
        nova = fakes.FakeNova()
        srv = nova.add('a')

        def hypervisors(**kw):
            if nova.servers[srv.id].compute_host == 'c01':
                return iter(fakes.hypervisor(h) for h in nova.services)
            # after the move: the audit's look fails
            raise fakes.http_error(400, 'bad request')
        with mock.patch.object(fakes.FakeCloud, '__init__',
                               _with_extra({}, hypervisors=hypervisors)):
            rc, rows, err = drain_json(nova)
        self.assertEqual(1, rc, err)
        self.assertEqual('moved', rows[0]['Result'])
        [extra] = [r for r in rows if r['Method'] == 'audit']
        self.assertEqual('not-checked', extra['Audit'][0]['code'])
        self.assertIn('bad request', extra['Message'])

    def test_ctrl_c_during_the_audit(self):
        nova = fakes.FakeNova()
        nova.add('a')
        with mock.patch.object(audit, 'audit_host',
                               side_effect=KeyboardInterrupt):
            rc, rows, err = drain_json(nova)
        self.assertEqual(130, rc)
        self.assertEqual('moved', rows[0]['Result'])
        self.assertIn('not audited', err)


def _with_extra(extra, hypervisors=None):
    init = fakes.FakeCloud.__init__

    def __init__(self, nova, *a, **kw):
        init(self, nova, *a, **kw)
        self.extra = extra
        if hypervisors is not None:
            self.compute.hypervisors.side_effect = hypervisors
    return __init__


class TestEngineStatuses(testtools.TestCase):

    def test_over_is_the_engines_final(self):
        self.assertEqual(set(cloud_nova.MIGRATION_FINAL),
                         set(audit.MIGRATION_OVER))
        self.assertNotIn(audit.UNCONFIRMED, audit.MIGRATION_OVER)
