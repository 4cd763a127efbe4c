"""recover-all rules: what to start, when to escalate, when to refuse;
evacuate with power-state restore; the command's output and exit status."""

import io
import json
from unittest import mock

from openstack.block_storage.v3 import _proxy as bs_proxy
from openstack.compute.v2 import server_action as _action
import testtools

from osc_nodeops import errors
from osc_nodeops import timeutil
from osc_nodeops.ops import engine
from osc_nodeops.ops import recover
from osc_nodeops.v1 import recover as v1_recover
from tests.unit import fakes
from tests.unit.test_engine import FakeClock


class RecoverNova(fakes.FakeNova):
    """FakeNova plus start/reboot/evacuate, instance actions, force-down.

    Per-server scripts (``self.scripts``) say how each power operation
    ends: ``ok`` (ACTIVE, running), ``nostate`` (ACTIVE but not running:
    a soft reboot of a guest the hypervisor forgot), ``error`` (ERROR),
    ``hang`` (the task never ends).  Evacuations go accepted ->
    pre-migrating -> done and deliver the server SHUTOFF (2.95).
    """

    def __init__(self, **kw):
        super().__init__(**kw)
        self.actions = {}
        self.power_ops = {}
        self.calls = []
        c = self.compute
        c.start_server.side_effect = self._start_server
        c.reboot_server.side_effect = self._reboot_server
        c.evacuate_server.side_effect = self._evacuate
        c.server_actions.side_effect = self._server_actions
        c.update_service_forced_down.side_effect = self._force_down
        c.pause_server.side_effect = self._pause_server
        c.get_server_action.side_effect = self._get_server_action

    def add_action(self, server, action, user_id='u1', when='2026-01-01',
                   events=()):
        self.actions.setdefault(server.id, []).append(_action.ServerAction(
            action=action, user_id=user_id, start_time=when,
            request_id='req-%d' % len(self.actions.get(server.id, ())),
            events=list(events)))

    def _get_server_action(self, action, server, ignore_missing=True):
        for a in self.actions.get(getattr(server, 'id', server), ()):
            if a.request_id == getattr(action, 'request_id', action):
                return a
        raise fakes.http_error(404, 'no such action')

    def _server_actions(self, server, **kw):
        return iter(list(reversed(self.actions.get(
            getattr(server, 'id', server), []))))

    def _power(self, server_id, kind, task):
        srv = self.servers[server_id]
        self.calls.append((kind, srv.name))
        srv.task_state = task
        self.power_ops[server_id] = [0, self._next(server_id)]

    def _start_server(self, server):
        sid = getattr(server, 'id', server)
        if self.servers[sid].status != 'SHUTOFF':
            raise fakes.http_error(409, 'not SHUTOFF')
        self._power(sid, 'start', 'powering-on')

    def _reboot_server(self, server, reboot_type):
        sid = getattr(server, 'id', server)
        self._power(sid, 'reboot-' + reboot_type.lower(),
                    'rebooting' if reboot_type == 'SOFT'
                    else 'rebooting_hard')

    def _pause_server(self, server):
        sid = getattr(server, 'id', server)
        if self.servers[sid].status != 'ACTIVE':
            raise fakes.http_error(409, 'not ACTIVE')
        self.calls.append(('pause', self.servers[sid].name))
        self.servers[sid].task_state = 'pausing'
        self.power_ops[sid] = [0, 'paused']

    def _evacuate(self, server, host=None, admin_pass=None, force=None,
                  on_shared_storage=None):
        sid = getattr(server, 'id', server)
        srv = self.servers[sid]
        self.calls.append(('evacuate', srv.name))
        m = self.add_migration(sid, status='accepted',
                               migration_type='evacuation',
                               source=srv.compute_host,
                               dest=host or self.default_dest)
        m._evac = 0
        m._fail = self._next(sid) == 'fail'
        srv.task_state = 'rebuilding'

    def _force_down(self, service, host=None, binary=None, forced=True):
        self.services[host].forced_down = forced
        self.services[host].state = 'down'

    def tick(self):
        super().tick()
        for sid, op in list(self.power_ops.items()):
            op[0] += 1
            if op[0] < 2:
                continue
            srv = self.servers[sid]
            outcome = op[1]
            if outcome == 'hang':
                continue
            del self.power_ops[sid]
            srv.task_state = None
            if outcome == 'ok':
                srv.status, srv.power_state = 'ACTIVE', 1
            elif outcome == 'nostate':
                srv.status, srv.power_state = 'ACTIVE', 0
            elif outcome == 'error':
                srv.status, srv.power_state = 'ERROR', 0
            elif outcome == 'paused':
                srv.status, srv.power_state = 'PAUSED', 3
        for m in self.migrations.values():
            if not hasattr(m, '_evac') or m.status == 'done':
                continue
            m._evac += 1
            if m._evac == 1:
                m.status = 'pre-migrating'
            elif m._evac >= 2 and getattr(m, '_fail', False):
                # as nova when the guest already exists on the target
                m.status, m._evac = 'failed', -99
                srv = self.servers[m.server_id]
                srv.status, srv.task_state = 'ERROR', None
                msg = 'Instance instance-000000aa already exists.'
                srv.fault = {'message': msg, 'code': 500}
                self.add_action(srv, 'evacuate', when=timeutil.utcnow()
                                .isoformat(), events=[{
                                    'event': 'compute_rebuild_instance',
                                    'result': 'Error', 'details': msg}])
            elif m._evac >= 2:
                m.status = 'done'
                srv = self.servers[m.server_id]
                srv.compute_host = m.dest_compute
                srv.status, srv.power_state = 'SHUTOFF', 4
                srv.task_state = None


def conn_for(nova):
    conn = mock.Mock()
    conn.compute = nova.compute
    conn.block_storage = mock.create_autospec(bs_proxy.Proxy, instance=True)
    return conn


def run(nova, host='c01', **opts):
    opts.setdefault('retry_delay', 1.0)
    opts.setdefault('poll_interval', 1.0)
    opts.setdefault('timeout', 30.0)
    clock = FakeClock()
    events = []
    report = recover.recover_host(
        conn_for(nova), host, recover.Options(**opts), events=events.append,
        runtime=clock.runtime())
    return report, events


def by_name(report):
    """The server rows by server name (not the dead host's own row)."""
    return {i.server.name: i for i in report.items if i.server is not None}


class TestStoppedOnPurpose(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.nova = RecoverNova()

    def test_user_stop_is_on_purpose(self):
        s = self.nova.add('a', status='SHUTOFF', power_state=4)
        self.nova.add_action(s, 'create', when='2026-01-01T00:00:00')
        self.nova.add_action(s, 'stop', user_id='alice',
                             when='2026-01-02T00:00:00')
        purpose, why = recover.stopped_on_purpose(self.nova.compute, s)
        self.assertTrue(purpose)
        self.assertIn('alice', why)

    def test_sync_stop_has_no_user(self):
        s = self.nova.add('a', status='SHUTOFF', power_state=4)
        self.nova.add_action(s, 'stop', user_id='alice',
                             when='2026-01-01T00:00:00')
        self.nova.add_action(s, 'start', when='2026-01-02T00:00:00')
        self.nova.add_action(s, 'stop', user_id=None,
                             when='2026-01-03T00:00:00')
        purpose, why = recover.stopped_on_purpose(self.nova.compute, s)
        self.assertFalse(purpose)
        self.assertIn('power-state sync', why)

    def test_newest_power_action_wins_migrations_ignored(self):
        s = self.nova.add('a', status='SHUTOFF', power_state=4)
        self.nova.add_action(s, 'stop', user_id='bob',
                             when='2026-01-01T00:00:00')
        self.nova.add_action(s, 'migrate', when='2026-01-02T00:00:00')
        self.assertTrue(recover.stopped_on_purpose(self.nova.compute, s)[0])


class TestRebootMode(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.nova = RecoverNova()
        n = self.nova
        self.running = n.add('running')
        self.forgotten = n.add('forgotten', power_state=0)
        self.user_stopped = n.add('user-stopped', status='SHUTOFF',
                                  power_state=4)
        n.add_action(self.user_stopped, 'stop', user_id='alice')
        self.sync_stopped = n.add('sync-stopped', status='SHUTOFF',
                                  power_state=4)
        n.add_action(self.sync_stopped, 'stop', user_id=None)
        self.errored = n.add('errored', status='ERROR', power_state=0)
        self.paused = n.add('paused', status='PAUSED', power_state=3)
        # nova's fake driver reports a paused guest as running
        n.add('paused-fake', status='PAUSED', power_state=1)
        n.add('elsewhere', host='c02', power_state=0)

    def test_plan(self):
        report, _ = run(self.nova, dry_run=True)
        items = by_name(report)
        self.assertEqual(
            {'running': ('skip', 'skipped'),
             'forgotten': ('reboot', 'planned'),
             'user-stopped': ('skip', 'skipped'),
             'sync-stopped': ('start', 'planned'),
             'errored': ('hard-reboot', 'planned'),
             'paused': ('skip', 'skipped'),
             'paused-fake': ('skip', 'skipped')},
            {k: (v.method, v.result) for k, v in items.items()})
        self.assertTrue(report.ok)
        self.assertEqual([], self.nova.calls)

    def test_paused_with_its_guest_gone_is_brought_back_paused(self):
        # after a compute restart: PAUSED, power state NOSTATE, and the
        # instance actions say its owner paused it
        gone = self.nova.add('paused-gone', status='PAUSED', power_state=0)
        self.nova.add_action(gone, 'create', when='2026-01-01T00:00:00')
        self.nova.add_action(gone, 'pause', user_id='alice',
                             when='2026-01-02T00:00:00')
        self.nova.add_action(self.paused, 'pause', user_id='bob',
                             when='2026-01-02T00:00:00')
        report, _ = run(self.nova, dry_run=True)
        items = by_name(report)
        self.assertEqual(('hard-reboot', 'planned'),
                         (items['paused-gone'].method,
                          items['paused-gone'].result))
        self.assertIn('guest is gone', items['paused-gone'].reason)
        self.assertIn('paused by user alice', items['paused-gone'].reason)
        # a live paused guest is left alone, and says who paused it
        self.assertEqual(('skip', 'skipped'), (items['paused'].method,
                                               items['paused'].result))
        self.assertIn('paused by user bob', items['paused'].reason)
        report, _ = run(self.nova)
        item = by_name(report)['paused-gone']
        self.assertTrue(report.ok, [i.row() for i in report.items])
        self.assertEqual(('hard-reboot', 'paused'),
                         (item.method, item.result))
        self.assertEqual([('reboot-hard', 'paused-gone'),
                          ('pause', 'paused-gone')],
                         [c for c in self.nova.calls if c[1] == 'paused-gone'])
        srv = self.nova.servers[gone.id]
        self.assertEqual(('PAUSED', 3), (srv.status, srv.power_state))
        self.assertNotIn(('reboot-hard', 'paused'), self.nova.calls)

    def test_paused_gone_not_paused_by_a_user_comes_back_running(self):
        gone = self.nova.add('paused-gone', status='PAUSED', power_state=0)
        self.nova.add_action(gone, 'pause', user_id=None)
        report, _ = run(self.nova)
        item = by_name(report)['paused-gone']
        self.assertEqual(('hard-reboot', 'running'),
                         (item.method, item.result))
        srv = self.nova.servers[gone.id]
        self.assertEqual(('ACTIVE', 1), (srv.status, srv.power_state))

    def test_all_and_hard(self):
        report, _ = run(self.nova, dry_run=True, all=True, hard=True)
        items = by_name(report)
        self.assertEqual('hard-reboot', items['user-stopped'].method)
        self.assertEqual('hard-reboot', items['sync-stopped'].method)
        self.assertEqual('hard-reboot', items['forgotten'].method)
        self.assertEqual('skip', items['running'].method)

    def test_brings_back_only_those_that_were_running(self):
        report, _ = run(self.nova)
        items = by_name(report)
        self.assertTrue(report.ok, [i.row() for i in report.items])
        for name in ('forgotten', 'sync-stopped', 'errored'):
            srv = self.nova.servers[items[name].id]
            self.assertEqual(('ACTIVE', 1), (srv.status, srv.power_state))
            self.assertEqual('running', items[name].result)
        stopped = self.nova.servers[self.user_stopped.id]
        self.assertEqual('SHUTOFF', stopped.status)
        self.assertNotIn(('start', 'user-stopped'), self.nova.calls)
        self.assertEqual('PAUSED', self.nova.servers[self.paused.id].status)

    def test_escalates_to_hard_reboot_when_not_back(self):
        # soft reboot of a forgotten guest ends ACTIVE/NOSTATE: hard reboot
        self.nova.scripts[self.forgotten.id] = ['nostate', 'ok']
        report, events = run(self.nova)
        item = by_name(report)['forgotten']
        self.assertEqual(('hard-reboot', 'running'),
                         (item.method, item.result))
        self.assertIn('escalated to a hard reboot', item.message)
        self.assertEqual([('reboot-soft', 'forgotten'),
                          ('reboot-hard', 'forgotten')],
                         [c for c in self.nova.calls if c[1] == 'forgotten'])
        self.assertTrue(any(e.kind == 'escalate' for e in events))

    def test_escalates_when_start_goes_error(self):
        self.nova.scripts[self.sync_stopped.id] = ['error', 'ok']
        report, _ = run(self.nova)
        item = by_name(report)['sync-stopped']
        self.assertEqual(('hard-reboot', 'running'),
                         (item.method, item.result))
        self.assertEqual([('start', 'sync-stopped'),
                          ('reboot-hard', 'sync-stopped')],
                         [c for c in self.nova.calls
                          if c[1] == 'sync-stopped'])

    def test_escalation_keeps_the_items_action(self):
        # The shared actions are never swapped on an item: the item keeps
        # its action, which names and issues what it escalated to.
        self.nova.scripts[self.forgotten.id] = ['nostate', 'nostate', 'ok']
        report, events = run(self.nova, retries=2)
        item = by_name(report)['forgotten']
        self.assertIs(recover.REBOOT, item.action)
        self.assertEqual(('hard-reboot', 'running'),
                         (item.method, item.result))
        self.assertEqual([('reboot-soft', 'forgotten'),
                          ('reboot-hard', 'forgotten'),
                          ('reboot-hard', 'forgotten')],
                         [c for c in self.nova.calls if c[1] == 'forgotten'])
        self.assertEqual(1, sum(1 for e in events if e.kind == 'escalate'))
        self.assertEqual('reboot', recover.REBOOT.method_name(
            engine.PlanItem(self.forgotten, recover.REBOOT)))

    def test_escalates_on_timeout(self):
        self.nova.scripts[self.forgotten.id] = ['hang', 'ok']
        report, _ = run(self.nova, timeout=10.0)
        item = by_name(report)['forgotten']
        self.assertEqual(('hard-reboot', 'running'),
                         (item.method, item.result))
        self.assertIn('not back within 10s', item.message)

    def test_hard_reboot_failing_is_reported(self):
        self.nova.scripts[self.errored.id] = ['error', 'error']
        report, _ = run(self.nova)
        item = by_name(report)['errored']
        self.assertEqual('failed', item.result)
        self.assertFalse(report.ok)

    def test_refused_when_service_down(self):
        self.nova.services['c01'].state = 'down'
        exc = self.assertRaises(errors.Refused, run, self.nova)
        self.assertIn('--dead', str(exc))
        self.assertEqual([], self.nova.calls)


class TestDeadMode(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.nova = RecoverNova()
        self.a = self.nova.add('a', host='c03')
        self.b = self.nova.add('b', host='c03', status='SHUTOFF',
                               power_state=4)
        self.c = self.nova.add('c', host='c03', status='ERROR',
                               power_state=0)

    def test_refused_while_up(self):
        exc = self.assertRaises(errors.Refused, run, self.nova, 'c03',
                                dead=True)
        self.assertIn('still up', str(exc))
        self.assertIn('--confirm-fenced c03', str(exc))
        self.assertEqual([], self.nova.calls)
        self.assertFalse(self.nova.compute.update_service_forced_down.called)

    def test_force_down_needs_fenced_confirmation(self):
        for confirm in (None, 'c01'):
            exc = self.assertRaises(
                (errors.Refused, errors.UsageError), run, self.nova, 'c03',
                dead=True, force_down=True, confirm_fenced=confirm)
            self.assertIn('fenced', str(exc))
        self.assertFalse(self.nova.compute.update_service_forced_down.called)
        # the confirmation alone does not force an up host down
        exc = self.assertRaises(errors.Refused, run, self.nova, 'c03',
                                dead=True, confirm_fenced='c03')
        self.assertIn('still up', str(exc))
        self.assertFalse(self.nova.compute.update_service_forced_down.called)

    def test_confirmation_must_name_the_host_even_when_down(self):
        # c03 is already down: a confirmation naming another host, or none,
        # is still a usage error and nothing is evacuated
        self.nova.services['c03'].state = 'down'
        for confirm in ('c02', None):
            exc = self.assertRaises(errors.UsageError, run, self.nova,
                                    'c03', dead=True, force_down=True,
                                    confirm_fenced=confirm)
            self.assertIn('--confirm-fenced', str(exc))
        self.assertIn("names 'c02', not the host being recovered ('c03')",
                      str(self.assertRaises(
                          errors.UsageError, recover.validate,
                          recover.Options(dead=True, force_down=True,
                                          confirm_fenced='c02'), 'c03')))
        self.assertEqual([], self.nova.calls)
        self.assertFalse(self.nova.compute.evacuate_server.called)
        self.assertFalse(self.nova.compute.update_service_forced_down.called)

    def test_force_down_with_confirmation_evacuates(self):
        report, _ = run(self.nova, 'c03', dead=True, force_down=True,
                        confirm_fenced='c03', target_host='c01')
        self.nova.compute.update_service_forced_down.assert_called_once_with(
            mock.ANY, host='c03', binary='nova-compute', forced=True)
        self.assertTrue(report.ok, [i.row() for i in report.items])
        for s in (self.a, self.b, self.c):
            self.assertEqual('c01', self.nova.servers[s.id].compute_host)

    def test_evacuate_restores_power_state(self):
        self.nova.services['c03'].state = 'down'
        report, _ = run(self.nova, 'c03', dead=True, confirm_fenced='c03',
                        max_parallel=2)
        self.assertTrue(report.ok, [i.row() for i in report.items])
        items = by_name(report)
        srv = self.nova.servers
        self.assertEqual(('ACTIVE', 1, 'c02'),
                         (srv[self.a.id].status, srv[self.a.id].power_state,
                          srv[self.a.id].compute_host))
        # was stopped: stays stopped, is not started
        self.assertEqual('SHUTOFF', srv[self.b.id].status)
        self.assertNotIn(('start', 'b'), self.nova.calls)
        # was ERROR on the dead host: brought up
        self.assertEqual('ACTIVE', srv[self.c.id].status)
        self.assertEqual(('evacuate', 'evacuated', 'c02'),
                         (items['a'].method, items['a'].result,
                          items['a'].destination))
        self.assertIn('started again', items['a'].message)
        self.assertLessEqual(self.nova.in_flight_max, 2)

    def test_all_starts_the_stopped_ones_on_their_new_host(self):
        # --dead --all: one meaning with --via-db (and the reboot mode):
        # the SHUTOFF servers their owners stopped are started too (issue
        # 22: --all was ignored on the evacuate path).
        self.nova.services['c03'].state = 'down'
        report, _ = run(self.nova, 'c03', dead=True, confirm_fenced='c03',
                        all=True)
        self.assertTrue(report.ok, [i.row() for i in report.items])
        srv = self.nova.servers[self.b.id]
        self.assertEqual(('ACTIVE', 'c02'), (srv.status, srv.compute_host))
        self.assertIn('--all', by_name(report)['b'].message)

    def test_start_after_evacuation_is_retried_when_refused(self):
        self.nova.services['c03'].state = 'down'
        real = self.nova._start_server
        refused = []

        def start(server):
            if not refused:
                refused.append(server)
                raise fakes.http_error(409, 'task_state rebuild_spawning')
            return real(server)
        self.nova.compute.start_server.side_effect = start
        report, _ = run(self.nova, 'c03', dead=True, confirm_fenced='c03',
                        max_parallel=1)
        self.assertTrue(report.ok, [i.row() for i in report.items])
        self.assertEqual(1, len(refused))
        for s in (self.a, self.c):
            self.assertEqual('ACTIVE', self.nova.servers[s.id].status)

    def test_rerun_finishes_evacuated_but_still_stopped(self):
        # An earlier run was killed after nova evacuated a and b (2.95:
        # they arrived SHUTOFF on c02) and before it started a again.
        self.nova.services['c03'].state = 'down'
        for s in (self.a, self.b):
            self.nova.add_action(s, 'create', when='2026-01-01T00:00:00')
        self.nova.add_action(self.b, 'stop', user_id='alice',
                             when='2026-01-02T00:00:00')
        for s in (self.a, self.b):
            self.nova.add_action(s, 'evacuate', user_id='admin',
                                 when='2026-01-03T00:00:00')
            self.nova.add_migration(s.id, status='done',
                                    migration_type='evacuation',
                                    source='c03', dest='c02')
            srv = self.nova.servers[s.id]
            srv.compute_host, srv.status, srv.power_state = 'c02', \
                'SHUTOFF', 4
        del self.nova.servers[self.c.id]
        report, _ = run(self.nova, 'c03', dead=True, confirm_fenced='c03')
        items = by_name(report)
        self.assertTrue(report.ok, [i.row() for i in report.items])
        self.assertEqual(('evacuate', 'evacuated', 'c02'),
                         (items['a'].method, items['a'].result,
                          items['a'].destination))
        self.assertIn('evacuated by an earlier run', items['a'].message)
        self.assertEqual(('ACTIVE', 1), (self.nova.servers[self.a.id].status,
                                         self.nova.servers[self.a.id]
                                         .power_state))
        # b was stopped by its owner before the evacuation: stays stopped
        self.assertEqual('SHUTOFF', self.nova.servers[self.b.id].status)
        self.assertEqual(('skip', 'skipped'),
                         (items['b'].method, items['b'].result))
        self.assertIn('stopped by user alice', items['b'].reason)
        self.assertEqual([('start', 'a')], self.nova.calls)
        # nothing is evacuated twice
        self.assertFalse(self.nova.compute.evacuate_server.called)

    def test_rerun_leaves_evacuated_and_running_ones_alone(self):
        self.nova.services['c03'].state = 'down'
        self.nova.add_migration(self.a.id, status='done',
                                migration_type='evacuation', source='c03',
                                dest='c02')
        self.nova.servers[self.a.id].compute_host = 'c02'
        report, _ = run(self.nova, 'c03', dead=True, confirm_fenced='c03',
                        dry_run=True)
        self.assertNotIn('a', by_name(report))
        self.assertEqual([], self.nova.compute.server_actions.call_args_list)

    def test_failed_evacuation_row_carries_nova_fault_and_event(self):
        self.nova.services['c03'].state = 'down'
        self.nova.scripts[self.a.id] = ['fail', 'fail']
        report, _ = run(self.nova, 'c03', dead=True, confirm_fenced='c03')
        item = by_name(report)['a']
        self.assertEqual('failed', item.result)
        self.assertIn('migration', item.message)
        self.assertIn('nova fault: Instance instance-000000aa already '
                      'exists.', item.message)
        self.assertIn('instance action evacuate: event '
                      'compute_rebuild_instance failed', item.message)
        # the event's details repeat the fault: said once
        self.assertEqual(1, item.message.count('already exists'))
        self.assertFalse(report.ok)
        # only the failed row is looked up, its newest action first
        looked = [c.args for c in
                  self.nova.compute.get_server_action.call_args_list]
        self.assertEqual([(self.nova.actions[self.a.id][-1].request_id,
                           self.a.id)], looked)

    def test_dry_run_changes_nothing(self):
        self.nova.services['c03'].state = 'down'
        report, _ = run(self.nova, 'c03', dead=True, confirm_fenced='c03',
                        dry_run=True)
        self.assertEqual({'planned'}, {i.result for i in report.items})
        self.assertEqual([], self.nova.calls)

    def test_usage_errors(self):
        for kw in ({'via_db': True}, {'dead': True, 'via_db': True},
                   {'execute': True}, {'target_host': 'c02'},
                   {'max_parallel': 0}):
            self.assertRaises(errors.UsageError, recover.validate,
                              recover.Options(**kw))


class TestCommand(testtools.TestCase):

    def _cmd(self, nova):
        app = mock.Mock()
        app.stderr = io.StringIO()
        app.client_manager.sdk_connection = conn_for(nova)
        return v1_recover.RecoverAll(app, None), app

    def test_refusal_is_one_line_exit_1(self):
        nova = RecoverNova()
        nova.add('a', host='c03')
        cmd, app = self._cmd(nova)
        args = cmd.get_parser('recover-all').parse_args(['c03', '--dead'])
        self.assertEqual(1, cmd.run(args))
        err = app.stderr.getvalue()
        self.assertEqual(1, len(err.splitlines()), err)
        self.assertIn('still up', err)
        self.assertEqual([], nova.calls)

    def test_confirm_fenced_mismatch_exits_2(self):
        nova = RecoverNova()
        nova.services['c02'].state = 'down'
        s = nova.add('a', host='c02')
        for argv in (['c02', '--dead', '--force-down', '--confirm-fenced',
                      'c03'], ['c02', '--dead', '--force-down']):
            cmd, app = self._cmd(nova)
            args = cmd.get_parser('recover-all').parse_args(argv)
            self.assertEqual(2, cmd.run(args))
            err = app.stderr.getvalue()
            self.assertEqual(1, len(err.splitlines()), err)
            self.assertIn('--confirm-fenced', err)
        self.assertEqual('c02', nova.servers[s.id].compute_host)
        self.assertFalse(nova.compute.evacuate_server.called)

    def test_rows_and_exit_status(self):
        nova = RecoverNova()
        a = nova.add('a', power_state=0)
        nova.scripts[a.id] = ['error', 'error']
        cmd, app = self._cmd(nova)
        parser = cmd.get_parser('recover-all')
        args = parser.parse_args(['c01', '--timeout', '5', '--poll-interval',
                                  '0.01', '--retries', '1'])
        cols, rows = cmd.take_action(args)
        self.assertEqual(engine.ROW_COLUMNS, cols)
        self.assertEqual(1, len(rows))
        row = dict(zip(cols, rows[0]))
        self.assertEqual(('hard-reboot', 'failed'),
                         (row['Method'], row['Result']))
        self.assertEqual(1, cmd.exit_status)
        json.dumps(rows)  # rows are plain data for -f json
