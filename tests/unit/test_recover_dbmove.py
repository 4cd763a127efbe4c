"""recover-all --dead --via-db as a whole: service checks, dry run, move,
hard reboot of the ones that were running, --undo; the command layer."""

import io
import json
import os
import shutil
import tempfile
from unittest import mock

import testtools

from osc_nodeops.db import url as url_mod
from osc_nodeops import errors
from osc_nodeops.ops import recover
from osc_nodeops.ops.recover import via_db
from osc_nodeops.v1 import recover as v1_recover
from tests.unit import fake_placement
from tests.unit import fakedb
from tests.unit.test_engine import FakeClock
from tests.unit.test_recover import RecoverNova
from tests.unit.test_recover import conn_for

NOVA = 'mysql+pymysql://nova:s3cret@db/nova_cell1'
NEUTRON = 'mysql+pymysql://nova:s3cret@db/neutron'


class ViaDBFixture(testtools.TestCase):
    """A dead c03 with servers a (running) and b (stopped), their rows
    in a fake DB and allocations in a fake placement."""

    def setUp(self):
        super().setUp()
        self.nova = RecoverNova()
        self.nova.services['c03'].state = 'down'
        self.a = self.nova.add('a', host='c03')
        self.b = self.nova.add('b', host='c03', status='SHUTOFF',
                               power_state=4)
        self.db = fakedb.Server()
        for s in (self.a, self.b):
            self.db.data['instances'].append({
                'uuid': s.id, 'host': 'c03', 'node': 'c03', 'compute_id': 3,
                'deleted': 0, 'name': s.name})
            self.db.data['ports'].append({'id': 'port-' + s.name,
                                          'device_id': s.id})
            self.db.data['bindings'].append({'port_id': 'port-' + s.name,
                                             'host': 'c03'})
        self.db.data['compute_nodes'].append(
            {'id': 2, 'host': 'c02', 'hypervisor_hostname': 'c02',
             'deleted': 0})
        self.dir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.journal = os.path.join(self.dir, 'j.json')
        self.placement = fake_placement.FakePlacement()
        self.placement.add_provider('rp-c02', 'c02')
        self.placement.add_provider('rp-c03', 'c03')
        self.res = {'VCPU': 1, 'MEMORY_MB': 64, 'DISK_GB': 1}
        for s in (self.a, self.b):
            self.placement.allocate(s.id, {'rp-c03': self.res})
        self.conn = conn_for(self.nova)
        self.conn.placement = self.placement

    def run_flow(self, **opts):
        opts.setdefault('dead', True)
        opts.setdefault('via_db', True)
        opts.setdefault('target_host', 'c02')
        opts.setdefault('confirm_fenced', 'c03')
        opts.setdefault('poll_interval', 1.0)
        opts.setdefault('timeout', 30.0)

        def moved(sess):
            # what nova sees once the rows are committed
            for row in sess.nova.tx['instances']:
                if row['host'] == 'c02':
                    self.nova.servers[row['uuid']].compute_host = 'c02'
        clock = FakeClock()
        self.events = []
        return via_db.recover_via_db(
            self.conn, 'c03', recover.Options(**opts),
            url_mod.DBURL.parse(NOVA), url_mod.DBURL.parse(NEUTRON),
            self.journal, connector=self.db.connect, before_commit=moved,
            events=self.events.append,
            runtime=clock.runtime())

    def undo(self):
        """``--undo`` of the journal: the rows as tuples."""
        report = via_db.undo(via_db.UndoRequest(
            self.journal, via_db.DBSource(url=NOVA),
            via_db.DBSource(url=NEUTRON)), connector=self.db.connect,
            conn=self.conn)
        return [(r.table, r.restored, r.already, r.gone)
                for r in report.rows]


class TestViaDBFlow(ViaDBFixture):

    def test_dry_run_default_changes_nothing(self):
        report = self.run_flow()
        sql = [e.message for e in self.events if e.kind == 'sql']
        self.assertEqual(2, len(sql))
        self.assertIn('UPDATE `nova_cell1`.`instances`', sql[0])
        self.assertIn("parameters: 'c02'", sql[0])
        self.assertEqual({('db-move', 'planned'),
                          ('move-allocation', 'planned'),
                          ('disable-host', 'planned')},
                         {(i.method, i.result) for i in report.items})
        self.assertEqual('enabled', self.nova.services['c03'].status)
        self.assertEqual({'c03'}, {r['host'] for r in
                                   self.db.data['instances']})
        self.assertFalse(os.path.exists(self.journal))
        self.assertEqual([], self.nova.calls)
        self.assertTrue(report.ok)
        # placement was only read
        self.assertEqual({'GET'}, {c[0] for c in self.placement.calls})
        self.assertEqual({'rp-c03': self.res},
                         self.placement.allocations_of(self.a.id))
        alloc = [i for i in report.items if i.method == 'move-allocation']
        self.assertIn('c03 DISK_GB=1, MEMORY_MB=64, VCPU=1 -> c02 '
                      'DISK_GB=1, MEMORY_MB=64, VCPU=1', alloc[0].message)

    def test_execute_moves_and_hard_reboots_running_ones(self):
        report = self.run_flow(execute=True)
        # the dead host is disabled first, with the way back in its row
        host = report.items[0]
        self.assertEqual(('c03', 'disable-host', 'disabled'),
                         (host.id, host.method, host.result))
        self.assertIn('--enable c03', host.message)
        self.assertEqual('disabled', self.nova.services['c03'].status)
        rows = sorted((i.server.name, i.method, i.result)
                      for i in report.items[1:])
        self.assertEqual([('a', 'db-move', 'moved'),
                          ('a', 'hard-reboot', 'running'),
                          ('a', 'move-allocation', 'moved'),
                          ('b', 'db-move', 'moved'),
                          ('b', 'move-allocation', 'moved'),
                          ('b', 'skip', 'skipped')], rows)
        for s in (self.a, self.b):
            self.assertEqual({'rp-c02': self.res},
                             self.placement.allocations_of(s.id))
        self.assertEqual({}, self.placement.usage('rp-c03'))
        # every write carried the consumer generation, at 1.28
        puts = [c for c in self.placement.calls if c[0] == 'PUT']
        self.assertEqual({'1.28'}, {c[2] for c in puts})
        self.assertEqual(2, len(puts))
        self.assertTrue(report.ok)
        self.assertEqual({'c02'}, {r['host'] for r in
                                   self.db.data['instances']})
        self.assertEqual([('reboot-hard', 'a')], self.nova.calls)
        self.assertEqual(self.journal, report.journal)
        self.assertIn(self.journal, report.items[1].message)

    def test_an_unfinished_journal_is_reported_on_start(self):
        from osc_nodeops.db import journal
        left = os.path.join(self.dir, 'db-move-c03-20260101T000000Z.json')
        journal.create(left, {'nova': {}, 'neutron': {}, 'old_host': 'c03',
                              'new_host': 'c02', 'state': 'nova-committed'})
        done = os.path.join(self.dir, 'db-move-c01-20260101T000001Z.json')
        journal.create(done, {'nova': {}, 'neutron': {}, 'old_host': 'c01',
                              'new_host': 'c02', 'state': 'committed'})
        self.run_flow()
        said = [e.message for e in self.events if e.kind == 'journal']
        self.assertEqual(1, len(said), said)
        self.assertIn(left, said[0])
        self.assertIn('nova rows were committed, the neutron rows not',
                      said[0])
        self.assertIn('--undo %s' % left, said[0])

    def test_journal_records_allocations_and_undo_restores_them(self):
        self.run_flow(execute=True)
        doc = json.load(open(self.journal))
        self.assertEqual(
            sorted([(self.a.id, {'rp-c03': self.res}, {'rp-c02': self.res}),
                    (self.b.id, {'rp-c03': self.res}, {'rp-c02': self.res})]),
            sorted((c['consumer'], c['before'], c['after'])
                   for c in doc['placement']['consumers']))
        rows = self.undo()
        self.assertIn(('placement allocations', 2, 0, 0), rows)
        self.assertIn(('instances', 2, 0, 0), rows)
        for s in (self.a, self.b):
            self.assertEqual({'rp-c03': self.res},
                             self.placement.allocations_of(s.id))
        self.assertEqual({'c03'}, {r['host'] for r in
                                   self.db.data['instances']})

    def test_undo_refused_when_an_allocation_changed(self):
        self.run_flow(execute=True)
        self.placement.allocate(self.a.id, {'rp-c02': {'VCPU': 2}})
        exc = self.assertRaises(errors.Refused, self.undo)
        self.assertIn(self.a.id, str(exc))
        self.assertIn('nothing was put back', str(exc))
        # neither the rows nor the other allocation moved back
        self.assertEqual({'c02'}, {r['host'] for r in
                                   self.db.data['instances']})
        self.assertEqual({'rp-c02': self.res},
                         self.placement.allocations_of(self.b.id))

    def test_undo_after_rows_went_back_finishes_the_allocations(self):
        self.run_flow(execute=True)
        # an undo that put the rows back and was killed before placement
        from osc_nodeops.db import hostmove
        hostmove.undo(self.journal, url_mod.DBURL.parse(NOVA),
                      url_mod.DBURL.parse(NEUTRON), connector=self.db.connect)
        rows = self.undo()
        self.assertIn(('placement allocations', 2, 0, 0), rows)
        self.assertEqual({'rp-c03': self.res},
                         self.placement.allocations_of(self.a.id))
        # and then it is done
        self.assertRaises(Exception, self.undo)

    def test_target_without_room_is_a_failed_row(self):
        self.placement.capacity['rp-c02'] = {'VCPU': 1, 'MEMORY_MB': 64,
                                             'DISK_GB': 1}
        report = self.run_flow(execute=True)
        alloc = {i.server.name: i for i in report.items
                 if i.method == 'move-allocation'}
        self.assertEqual(['failed', 'moved'],
                         sorted(i.result for i in alloc.values()))
        failed = [i for i in alloc.values() if i.result == 'failed'][0]
        self.assertIn('Unable to allocate inventory', failed.message)
        self.assertFalse(report.ok)
        self.assertEqual({'rp-c03': self.res},
                         self.placement.allocations_of(failed.id))

    def test_stale_generation_is_read_again(self):
        def bump(consumer):  # someone rewrote the same allocation
            self.placement.consumers[consumer]['generation'] += 1
        self.placement.before_put = bump
        report = self.run_flow(execute=True)
        self.assertEqual(['moved', 'moved'], sorted(
            i.result for i in report.items if i.method == 'move-allocation'))
        self.assertEqual(3, len([c for c in self.placement.calls
                                 if c[0] == 'PUT']))

    def test_allocation_changed_meanwhile_is_not_overwritten(self):
        def change(consumer):
            self.placement.allocate(consumer, {'rp-c03': {'VCPU': 4}})
        self.placement.before_put = change
        report = self.run_flow(execute=True)
        failed = [i for i in report.items if i.method == 'move-allocation'
                  and i.result == 'failed']
        self.assertEqual(1, len(failed))
        self.assertIn('changed since it was recorded', failed[0].message)
        self.assertEqual({'rp-c03': {'VCPU': 4}},
                         self.placement.allocations_of(failed[0].id))
        self.assertFalse(report.ok)

    def test_old_placement_refused_before_anything_changes(self):
        self.placement.max_microversion = '1.27'
        exc = self.assertRaises(errors.Refused, self.run_flow, execute=True)
        self.assertIn('1.28', str(exc))
        self.assertEqual({'c03'}, {r['host'] for r in
                                   self.db.data['instances']})
        self.assertFalse(os.path.exists(self.journal))

    def test_refused_while_source_up(self):
        self.nova.services['c03'].state = 'up'
        self.assertRaises(errors.Refused, self.run_flow, execute=True)
        self.assertEqual({'c03'}, {r['host'] for r in
                                   self.db.data['instances']})


class TestCommandDB(testtools.TestCase):

    def _cmd(self, cls=v1_recover.RecoverAll):
        app = mock.Mock()
        app.stderr = io.StringIO()
        app.stdout = io.StringIO()
        app.client_manager.sdk_connection = conn_for(RecoverNova())
        self.app = app
        return cls(app, None)

    def run_failing(self, cmd, args):
        """(exit status, the one line on stderr), stdout empty."""
        rc = cmd.run(args)
        err = self.app.stderr.getvalue()
        self.assertEqual(1, len(err.splitlines()), err)
        self.assertEqual('', self.app.stdout.getvalue())
        return rc, err

    def test_bad_url_is_one_line_without_password(self):
        cmd = self._cmd()
        args = cmd.get_parser('x').parse_args([
            'c03', '--dead', '--via-db', '--target-host', 'c02',
            '--nova-db', 'postgresql://nova:TopS3cret@db/nova',
            '--neutron-db', NEUTRON])
        rc, err = self.run_failing(cmd, args)
        self.assertEqual(1, rc)
        self.assertIn('unsupported scheme', err)
        self.assertNotIn('TopS3cret', err)

    def test_missing_conf_named(self):
        cmd = self._cmd()
        args = cmd.get_parser('x').parse_args([
            '--undo', '/nonexistent/j.json',
            '--nova-conf', '/nonexistent/nova.conf'])
        rc, err = self.run_failing(cmd, args)
        self.assertEqual(1, rc)
        self.assertIn('/nonexistent/nova.conf', err)

    def test_undo_takes_no_host(self):
        cmd = self._cmd()
        args = cmd.get_parser('x').parse_args(['c03', '--undo', 'j.json'])
        rc, err = self.run_failing(cmd, args)
        self.assertEqual(2, rc)
        self.assertIn('--undo takes only the journal', err)

    def test_node_volumes_from_db(self):
        db = fakedb.Server()
        db.data['instances'].append({'uuid': 'i1', 'host': 'c01',
                                     'deleted': 0, 'name': 'vm1'})
        db.data['volumes'].append({'id': 'v1', 'status': 'in-use',
                                   'display_name': 'd', 'deleted': False})
        db.data['volume_attachment'].append({
            'instance_uuid': 'i1', 'volume_id': 'v1', 'mountpoint':
            '/dev/vdb', 'attach_status': 'attached', 'deleted': False,
            'attached_host': 'c01'})
        cmd = self._cmd(v1_recover.NodeVolumes)
        args = cmd.get_parser('x').parse_args([
            'c01', '--from-db', '--nova-db', NOVA, '--cinder-db',
            'mysql+pymysql://nova:s3cret@db/cinder'])
        with mock.patch.object(url_mod.DBURL, 'connect',
                               lambda self: db.connect()):
            cols, rows = cmd.take_action(args)
        self.assertEqual([('i1', 'vm1', 'v1', 'd', '/dev/vdb', 'in-use',
                           'attached')], rows)
        self.assertEqual('Attach Status', cols[-1])


class TestDebugLogRedaction(testtools.TestCase):

    def test_parsed_args_repr_hides_password(self):
        # osc-lib logs run(Namespace(...)) at debug level
        app = mock.Mock()
        app.stderr = io.StringIO()
        cmd = v1_recover.NodeVolumes(app, None)
        args = cmd.get_parser('x').parse_args([
            'c01', '--from-db', '--nova-db',
            'mysql+pymysql://nova:TopS3cret@db/nova_cell1'])
        seen = []

        def take_action(parsed_args):
            seen.append(parsed_args)
            return (), []
        with mock.patch.object(cmd, 'take_action', take_action):
            with self.assertLogs(level='DEBUG') as logs:
                cmd.log.setLevel('DEBUG')
                cmd.run(args)
        self.assertNotIn('TopS3cret', '\n'.join(logs.output))
        [args] = seen
        self.assertNotIn('TopS3cret', repr(args))
        self.assertIn('nova:***@db', repr(args))
        # the value itself still works
        self.assertEqual('TopS3cret',
                         url_mod.DBURL.parse(args.nova_db).password)


class TestViaDBUndoDryRunAndExclude(ViaDBFixture):
    """Issue 20 items 1 and 2: ``--undo JOURNAL --dry-run`` changes nothing
    (no SQL write, no placement write, the journal as it was) and says what
    it would put back; ``--exclude`` is honoured by the SQL move."""

    def _command(self, argv):
        app = mock.Mock()
        app.stderr = io.StringIO()
        app.stdout = io.StringIO()
        app.client_manager.sdk_connection = self.conn
        cmd = v1_recover.RecoverAll(app, None)
        args = cmd.get_parser('recover-all').parse_args(argv)
        with mock.patch.object(url_mod.DBURL, 'connect',
                               lambda url: self.db.connect()):
            rc = cmd.run(args)
        return rc, app

    def test_undo_dry_run_changes_nothing_and_says_what_it_would(self):
        import copy
        self.run_flow(execute=True)
        rows = copy.deepcopy(self.db.data)
        with open(self.journal) as f:
            journal_text = f.read()
        allocations = {s.id: self.placement.allocations_of(s.id)
                       for s in (self.a, self.b)}
        n_sql, n_placement = (len(self.db.statements),
                              len(self.placement.calls))
        rc, app = self._command(['--undo', self.journal, '--dry-run',
                                 '--nova-db', NOVA, '--neutron-db', NEUTRON,
                                 '-f', 'json'])
        self.assertEqual(0, rc, app.stderr.getvalue())
        # nothing changed: rows, allocations, the journal
        self.assertEqual(rows, self.db.data)
        self.assertEqual(allocations, {s.id: self.placement.allocations_of(
            s.id) for s in (self.a, self.b)})
        with open(self.journal) as f:
            self.assertEqual(journal_text, f.read())
        sent = [s for s, _ in self.db.statements[n_sql:]]
        self.assertEqual([], [s for s in sent if 'UPDATE' in s
                              or 'FOR UPDATE' in s])
        self.assertEqual({'GET'}, {c[0] for c in
                                   self.placement.calls[n_placement:]})
        # what it would put back, row by row, on stderr; the counts as rows
        err = app.stderr.getvalue()
        for s in (self.a, self.b):
            self.assertIn('would put back instance %s: host c02 -> c03'
                          % s.id, err)
            self.assertIn('would put back the placement allocation of %s: '
                          'c02 DISK_GB=1, MEMORY_MB=64, VCPU=1 -> c03'
                          % s.id, err)
        self.assertIn('would put back port binding port-a: c02 -> c03', err)
        out = json.loads(app.stdout.getvalue())
        self.assertIn({'Table': 'instances', 'Would Restore': 2,
                       'Already Back': 0, 'Gone': 0}, out)
        self.assertIn({'Table': 'placement allocations', 'Would Restore': 2,
                       'Already Back': 0, 'Gone': 0}, out)
        # and the real undo still works afterwards
        self.assertIn(('instances', 2, 0, 0), self.undo())
        self.assertEqual({'c03'}, {r['host'] for r in
                                   self.db.data['instances']})

    def test_exclude_is_honoured_by_the_sql_move(self):
        report = self.run_flow(execute=True, exclude=('b',))
        hosts = {r['uuid']: r['host'] for r in self.db.data['instances']}
        self.assertEqual({self.a.id: 'c02', self.b.id: 'c03'}, hosts)
        self.assertEqual({'port-a': 'c02', 'port-b': 'c03'},
                         {r['port_id']: r['host']
                          for r in self.db.data['bindings']})
        self.assertEqual({'rp-c03': self.res},
                         self.placement.allocations_of(self.b.id))
        self.assertEqual({'rp-c02': self.res},
                         self.placement.allocations_of(self.a.id))
        # no statement carried the excluded server
        for sql, params in self.db.statements:
            if sql.lstrip().startswith('UPDATE'):
                self.assertNotIn(self.b.id, params)
        rows = {(i.server.name, i.method, i.result) for i in report.items
                if i.server is not None}
        self.assertIn(('b', 'db-move', 'skipped'), rows)
        [excluded] = [i for i in report.items if i.server is not None
                      and i.server.name == 'b']
        self.assertIn('excluded (--exclude)', excluded.full_message())
        self.assertTrue(report.ok)
        doc = json.load(open(self.journal))
        self.assertEqual([self.a.id], [i['uuid'] for i in
                                       doc['nova']['instances']])

    def test_exclude_by_id_in_the_dry_run(self):
        report = self.run_flow(exclude=(self.a.id,))
        sql = [e.message for e in self.events if e.kind == 'sql']
        self.assertTrue(sql)
        self.assertNotIn(self.a.id, ' '.join(sql))
        self.assertIn(self.b.id, ' '.join(sql))
        self.assertEqual({('a', 'db-move', 'skipped'),
                          ('b', 'db-move', 'planned'),
                          ('b', 'move-allocation', 'planned')},
                         {(i.server.name, i.method, i.result)
                          for i in report.items
                          if i.method != 'disable-host'})
