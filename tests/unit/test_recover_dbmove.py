"""recover-all --dead --via-db as a whole: service checks, dry run, move,
hard reboot of the ones that were running, --undo; the command layer."""

import io
import os
import shutil
import tempfile
from unittest import mock

import testtools

from osc_nodeops.db import url as url_mod
from osc_nodeops import errors
from osc_nodeops.ops import dbmove
from osc_nodeops.ops import recover
from osc_nodeops.v1 import recover as v1_recover
from tests.unit import fakedb
from tests.unit.test_engine import FakeClock
from tests.unit.test_recover import RecoverNova
from tests.unit.test_recover import conn_for

NOVA = 'mysql+pymysql://nova:s3cret@db/nova_cell1'
NEUTRON = 'mysql+pymysql://nova:s3cret@db/neutron'


class TestViaDBFlow(testtools.TestCase):

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

    def run_flow(self, **opts):
        opts.setdefault('dead', True)
        opts.setdefault('via_db', True)
        opts.setdefault('target_host', 'c02')
        opts.setdefault('poll_interval', 1.0)
        opts.setdefault('timeout', 30.0)

        def moved(sess):
            # what nova sees once the rows are committed
            for s in (self.a, self.b):
                self.nova.servers[s.id].compute_host = 'c02'
        clock = FakeClock()
        self.events = []
        return dbmove.recover_via_db(
            conn_for(self.nova), 'c03', recover.Options(**opts),
            url_mod.DBURL.parse(NOVA), url_mod.DBURL.parse(NEUTRON),
            self.journal, connector=self.db.connect, before_commit=moved,
            events=self.events.append,
            executor_kwargs={'clock': clock, 'wait': clock.wait,
                             'handle_sigint': False})

    def test_dry_run_default_changes_nothing(self):
        report = self.run_flow()
        sql = [e.message for e in self.events if e.kind == 'sql']
        self.assertEqual(2, len(sql))
        self.assertIn('UPDATE `nova_cell1`.`instances`', sql[0])
        self.assertIn("parameters: 'c02'", sql[0])
        self.assertEqual({('db-move', 'planned')},
                         {(i.method, i.result) for i in report.items})
        self.assertEqual({'c03'}, {r['host'] for r in
                                   self.db.data['instances']})
        self.assertFalse(os.path.exists(self.journal))
        self.assertEqual([], self.nova.calls)
        self.assertTrue(report.ok)

    def test_execute_moves_and_hard_reboots_running_ones(self):
        report = self.run_flow(execute=True)
        rows = sorted((i.server.name, i.method, i.result)
                      for i in report.items)
        self.assertEqual([('a', 'db-move', 'moved'),
                          ('a', 'hard-reboot', 'running'),
                          ('b', 'db-move', 'moved'),
                          ('b', 'skip', 'skipped')], rows)
        self.assertTrue(report.ok)
        self.assertEqual({'c02'}, {r['host'] for r in
                                   self.db.data['instances']})
        self.assertEqual([('reboot-hard', 'a')], self.nova.calls)
        self.assertEqual(self.journal, report.journal)
        self.assertIn(self.journal, report.items[0].message)

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
