"""The legacy DB move (S20/S21): plan, execute, journal, undo, atomicity."""

import json
import os
import tempfile

import testtools

from osc_nodeops.db import errors
from osc_nodeops.db import hostmove
from osc_nodeops.db import journal
from osc_nodeops.db import url as url_mod
from tests.unit import fakedb

NOVA = 'mysql+pymysql://nova:n0va-s3cret@db1:3306/nova_cell1'
NEUTRON = 'mysql+pymysql://nova:n0va-s3cret@db1:3306/neutron'
NEUTRON_ELSEWHERE = 'mysql+pymysql://neutron:q-s3cret@db2:3306/neutron'

WEIRD = "c01'; DROP TABLE instances; -- \"%s\\"


def _instance(uuid, host, node=None, compute_id=1, deleted=0):
    return {'uuid': uuid, 'host': host, 'node': node or host,
            'compute_id': compute_id, 'deleted': deleted,
            'vm_state': 'active', 'power_state': 1, 'name': 'vm-' + uuid}


def populate(nova, neutron, old='c01', new='c02'):
    nova.data['instances'] += [
        _instance('i1', old, compute_id=1),
        _instance('i2', old, compute_id=1),
        _instance('i3', old, compute_id=1, deleted=3),   # deleted: stays
        _instance('i4', 'c03', compute_id=3),             # other host
    ]
    nova.data['compute_nodes'] += [
        {'id': 1, 'host': old, 'hypervisor_hostname': old + '-node',
         'deleted': 0},
        {'id': 2, 'host': new, 'hypervisor_hostname': new + '-node',
         'deleted': 0},
        {'id': 3, 'host': 'c03', 'hypervisor_hostname': 'c03', 'deleted': 0},
    ]
    neutron.data['ports'] += [
        {'id': 'p1', 'device_id': 'i1'},
        {'id': 'p2', 'device_id': 'i2'},
        {'id': 'p3', 'device_id': 'i2'},
        {'id': 'dhcp', 'device_id': 'dhcp-agent-on-' + old},
        {'id': 'p4', 'device_id': 'i4'},
    ]
    neutron.data['bindings'] += [
        {'port_id': 'p1', 'host': old},
        {'port_id': 'p2', 'host': old},
        {'port_id': 'p3', 'host': old},
        {'port_id': 'dhcp', 'host': old},
        {'port_id': 'p4', 'host': 'c03'},
    ]
    neutron.data['levels'] += [
        {'port_id': 'p1', 'host': old, 'level': 0},
        {'port_id': 'p2', 'host': old, 'level': 0},
        {'port_id': 'p2', 'host': old, 'level': 1},
        {'port_id': 'dhcp', 'host': old, 'level': 0},
    ]


class Base(testtools.TestCase):

    two_servers = False

    def setUp(self):
        super().setUp()
        self.nova_db = fakedb.Server()
        self.neutron_db = (fakedb.Server() if self.two_servers
                           else self.nova_db)
        self.nova_url = url_mod.DBURL.parse(NOVA)
        self.neutron_url = url_mod.DBURL.parse(
            NEUTRON_ELSEWHERE if self.two_servers else NEUTRON)
        self.dir = tempfile.mkdtemp()
        self.addCleanup(lambda: __import__('shutil').rmtree(self.dir))
        self.journal = os.path.join(self.dir, 'j.json')

    def connector(self, url):
        if url.host == 'db2':
            return self.neutron_db.connect(url)
        return self.nova_db.connect(url)

    def hosts(self, db, table):
        return sorted((r.get('uuid') or r.get('port_id'), r['host'])
                      + ((r['level'],) if 'level' in r else ())
                      for r in db.data[table])

    def snapshot(self, fresh=True):
        return (json.dumps(self.nova_db.data, sort_keys=True),
                json.dumps(self.neutron_db.data, sort_keys=True))

    def all_sql(self):
        return [s for s, _ in self.nova_db.statements] + (
            [s for s, _ in self.neutron_db.statements]
            if self.two_servers else [])

    def execute(self, old='c01', new='c02', **kw):
        return hostmove.execute(self.nova_url, self.neutron_url, old, new,
                                self.journal, connector=self.connector,
                                **kw)


class TestHostMoveSingleServer(Base):

    def test_plan_changes_nothing_and_lists_rows(self):
        populate(self.nova_db, self.neutron_db)
        before = self.snapshot()
        plan = hostmove.plan(self.nova_url, self.neutron_url, 'c01', 'c02',
                             connector=self.connector)
        self.assertEqual(before, self.snapshot())
        self.assertEqual(['i1', 'i2'], plan.instance_uuids())
        self.assertEqual(['p1', 'p2', 'p3'], plan.port_ids())
        self.assertEqual([('p1', 0), ('p2', 0), ('p2', 1)],
                         [(lv['port_id'], lv['level'])
                          for lv in plan.levels])
        self.assertEqual({'host': 'c02', 'node': 'c02-node',
                          'compute_id': 2}, plan.instances[0]['after'])
        self.assertEqual({'host': 'c01', 'node': 'c01',
                          'compute_id': 1}, plan.instances[0]['before'])
        self.assertTrue(plan.single_transaction)
        self.assertEqual([], plan.conflicts)
        self.assertEqual(['nova', 'neutron', 'neutron'],
                         [s.db for s in plan.statements])
        self.assertFalse(any(s.startswith('UPDATE') for s in self.all_sql()))
        self.assertFalse(os.path.exists(self.journal))

    def test_execute_moves_exactly_the_right_rows(self):
        populate(self.nova_db, self.neutron_db)
        result = self.execute()
        self.assertEqual(['i1', 'i2'], result.instance_uuids())
        self.assertEqual(
            [('i1', 'c02'), ('i2', 'c02'), ('i3', 'c01'), ('i4', 'c03')],
            self.hosts(self.nova_db, 'instances'))
        i1 = self.nova_db.data['instances'][0]
        self.assertEqual(('c02-node', 2), (i1['node'], i1['compute_id']))
        self.assertEqual(
            [('dhcp', 'c01'), ('p1', 'c02'), ('p2', 'c02'), ('p3', 'c02'),
             ('p4', 'c03')], self.hosts(self.neutron_db, 'bindings'))
        self.assertEqual(
            [('dhcp', 'c01', 0), ('p1', 'c02', 0), ('p2', 'c02', 0),
             ('p2', 'c02', 1)], self.hosts(self.neutron_db, 'levels'))
        # one connection, one commit for both schemas
        self.assertEqual(1, len(self.nova_db.connections))
        self.assertEqual(1, self.nova_db.connections[0].commits)
        doc = journal.read(self.journal)
        self.assertEqual('committed', doc['state'])
        self.assertEqual(['i1', 'i2'],
                         [i['uuid'] for i in doc['nova']['instances']])
        self.assertEqual('c01', doc['nova']['instances'][0]['before']['host'])
        self.assertEqual(3, len(doc['neutron']['bindings']))
        self.assertEqual(0o600, os.stat(self.journal).st_mode & 0o777)

    def test_journal_written_before_commit(self):
        populate(self.nova_db, self.neutron_db)
        seen = {}

        def hook(sess):
            seen['doc'] = journal.read(self.journal)
        self.execute(before_commit=hook)
        self.assertEqual('prepared', seen['doc']['state'])
        self.assertEqual(2, len(seen['doc']['nova']['instances']))

    def test_drop_before_commit_changes_nothing(self):
        populate(self.nova_db, self.neutron_db)
        before = self.snapshot()

        def drop(sess):
            sess.nova.drop()
        self.assertRaises(errors.DBError, self.execute, before_commit=drop)
        self.assertEqual(before, self.snapshot())
        self.assertEqual('rolled-back', journal.read(self.journal)['state'])

    def test_undo_restores(self):
        populate(self.nova_db, self.neutron_db)
        before = self.snapshot()
        self.execute()
        self.assertNotEqual(before, self.snapshot())
        res = hostmove.undo(self.journal, self.nova_url, self.neutron_url,
                            connector=self.connector)
        self.assertEqual(before, self.snapshot())
        self.assertEqual(2, res.restored['instances'])
        self.assertEqual(3, res.restored['bindings'])
        self.assertEqual(3, res.restored['levels'])
        self.assertEqual('undone', journal.read(self.journal)['state'])
        # a second undo is refused, nothing changes
        self.assertRaises(errors.DBConflict, hostmove.undo, self.journal,
                          self.nova_url, self.neutron_url,
                          connector=self.connector)
        self.assertEqual(before, self.snapshot())

    def test_undo_refuses_when_rows_moved_since(self):
        populate(self.nova_db, self.neutron_db)
        self.execute()
        self.nova_db.data['instances'][0]['host'] = 'c03'
        after = self.snapshot()
        exc = self.assertRaises(errors.DBConflict, hostmove.undo,
                                self.journal, self.nova_url,
                                self.neutron_url, connector=self.connector)
        self.assertIn('i1', str(exc))
        self.assertEqual(after, self.snapshot())

    def test_undo_refuses_other_schema(self):
        populate(self.nova_db, self.neutron_db)
        self.execute()
        other = url_mod.DBURL.parse(
            'mysql+pymysql://nova:x@db1/nova_cell2')
        self.assertRaises(errors.DBConfigError, hostmove.undo, self.journal,
                          other, self.neutron_url, connector=self.connector)

    def test_undo_checks_the_server_it_talks_to(self):
        # same URL (host:port/schema), another server behind it (a moved
        # VIP, a restored replica): refused, nothing changed
        populate(self.nova_db, self.neutron_db)
        self.execute()
        doc = journal.read(self.journal)
        self.assertEqual(self.nova_db.identity[0],
                         doc['nova']['server']['hostname'])
        after = self.snapshot()
        self.nova_db.identity = ('replica-2', 3306, 7)
        exc = self.assertRaises(errors.DBConflict, hostmove.undo,
                                self.journal, self.nova_url,
                                self.neutron_url, connector=self.connector)
        self.assertIn('replica-2', str(exc))
        self.assertIn('nothing changed', str(exc))
        self.assertEqual(after, self.snapshot())

    def test_undo_of_a_journal_without_server_checks_the_address(self):
        populate(self.nova_db, self.neutron_db)
        self.execute()
        doc = journal.read(self.journal)
        for part in ('nova', 'neutron'):
            del doc[part]['server']
        journal.write(self.journal, doc)
        moved = url_mod.DBURL.parse(
            'mysql+pymysql://nova:n0va-s3cret@db9:3306/nova_cell1')
        self.assertRaises(errors.DBConflict, hostmove.undo, self.journal,
                          moved, self.neutron_url, connector=self.connector)
        hostmove.undo(self.journal, self.nova_url, self.neutron_url,
                      connector=self.connector)

    def test_host_names_are_data(self):
        populate(self.nova_db, self.neutron_db, old=WEIRD, new='c02')
        self.execute(old=WEIRD)
        self.assertEqual(
            [('i1', 'c02'), ('i2', 'c02'), ('i3', WEIRD), ('i4', 'c03')],
            self.hosts(self.nova_db, 'instances'))
        for sql in self.all_sql():
            self.assertNotIn('DROP', sql)
            self.assertNotIn("c01'", sql)
        hostmove.undo(self.journal, self.nova_url, self.neutron_url,
                      connector=self.connector)
        self.assertEqual(WEIRD, self.nova_db.data['instances'][0]['host'])

    def test_conflicting_binding_refused(self):
        populate(self.nova_db, self.neutron_db)
        # an inactive binding for the target left by a live migration
        self.neutron_db.data['bindings'].append(
            {'port_id': 'p2', 'host': 'c02'})
        before = self.snapshot()
        exc = self.assertRaises(errors.DBConflict, self.execute)
        self.assertIn('p2', str(exc))
        self.assertEqual(before, self.snapshot())
        self.assertFalse(os.path.exists(self.journal))

    def test_target_without_compute_node_refused(self):
        populate(self.nova_db, self.neutron_db)
        before = self.snapshot()
        exc = self.assertRaises(errors.DBConflict, self.execute, new='nope')
        self.assertIn('no compute node', str(exc))
        self.assertEqual(before, self.snapshot())

    def test_nothing_on_host(self):
        populate(self.nova_db, self.neutron_db)
        before = self.snapshot()
        result = self.execute(old='c09')
        self.assertEqual([], result.instances)
        self.assertEqual(before, self.snapshot())
        self.assertFalse(os.path.exists(self.journal))

    def test_existing_journal_not_overwritten(self):
        populate(self.nova_db, self.neutron_db)
        with open(self.journal, 'w') as f:
            f.write('keep me')
        before = self.snapshot()
        self.assertRaises(errors.DBConfigError, self.execute)
        self.assertEqual(before, self.snapshot())
        with open(self.journal) as f:
            self.assertEqual('keep me', f.read())

    def test_same_host_refused(self):
        self.assertRaises(errors.DBConfigError, self.execute, new='c01')

    def test_schema_without_compute_id(self):
        populate(self.nova_db, self.neutron_db)
        self.nova_db.has_compute_id = False
        self.execute()
        i1 = self.nova_db.data['instances'][0]
        self.assertEqual(('c02', 'c02-node', 1),
                         (i1['host'], i1['node'], i1['compute_id']))
        self.assertFalse(any('compute_id =' in s for s in self.all_sql()))


class TestHostMoveTwoServers(Base):

    two_servers = True

    def test_two_transactions_commit_both(self):
        populate(self.nova_db, self.neutron_db)
        self.execute()
        self.assertEqual([('i1', 'c02'), ('i2', 'c02'), ('i3', 'c01'),
                          ('i4', 'c03')],
                         self.hosts(self.nova_db, 'instances'))
        self.assertEqual(
            [('dhcp', 'c01'), ('p1', 'c02'), ('p2', 'c02'), ('p3', 'c02'),
             ('p4', 'c03')], self.hosts(self.neutron_db, 'bindings'))
        self.assertEqual('committed', journal.read(self.journal)['state'])

    def test_neutron_dropped_before_commit_changes_nothing(self):
        populate(self.nova_db, self.neutron_db)
        before = self.snapshot()

        def drop(sess):
            sess.neutron.drop()
        exc = self.assertRaises(errors.DBError, self.execute,
                                before_commit=drop)
        self.assertIn('neutron', str(exc))
        self.assertEqual(before, self.snapshot())

    def test_second_commit_failure_compensates_first(self):
        populate(self.nova_db, self.neutron_db)
        before = self.snapshot()
        self.neutron_db.fail_commit = 1
        exc = self.assertRaises(errors.DBError, self.execute)
        self.assertIn('put back', str(exc))
        self.assertEqual(before, self.snapshot())
        self.assertEqual('compensated', journal.read(self.journal)['state'])

    def test_compensation_failure_says_run_undo(self):
        populate(self.nova_db, self.neutron_db)
        self.neutron_db.fail_commit = 1
        self.nova_db.fail_commit = 0
        real = self.connector
        calls = []

        def connector(url):
            calls.append(url.host)
            if url.host == 'db1' and len(calls) > 2:
                raise errors.DBError('cannot connect to db1')
            return real(url)
        exc = self.assertRaises(
            errors.CompensationFailed, hostmove.execute, self.nova_url,
            self.neutron_url, 'c01', 'c02', self.journal,
            connector=connector)
        self.assertIn('--undo', str(exc))
        # nova committed, neutron not; --undo puts nova back
        self.assertEqual('c02', self.nova_db.data['instances'][0]['host'])
        hostmove.undo(self.journal, self.nova_url, self.neutron_url,
                      connector=self.connector)
        self.assertEqual('c01', self.nova_db.data['instances'][0]['host'])
        self.assertEqual('c01', self.neutron_db.data['bindings'][0]['host'])

    def test_undo_two_servers(self):
        populate(self.nova_db, self.neutron_db)
        before = self.snapshot()
        self.execute()
        hostmove.undo(self.journal, self.nova_url, self.neutron_url,
                      connector=self.connector)
        self.assertEqual(before, self.snapshot())

    def test_passwords_never_in_errors_or_journal(self):
        populate(self.nova_db, self.neutron_db)
        # the driver's own error quotes both passwords (and a URL): the
        # production path (hostmove's session) must hide them
        self.neutron_db.fail_update = (
            "Access denied for user 'nova' (using password: n0va-s3cret); "
            "neutron q-s3cret; mysql+pymysql://neutron:q-s3cret@db2/neutron")
        exc = self.assertRaises(errors.DBError, self.execute)
        self.assertIn('Access denied', str(exc))
        self.assertNotIn('s3cret', str(exc))
        with open(self.journal) as f:
            text = f.read()
        self.assertNotIn('s3cret', text)
        self.assertIn('db2:3306/neutron', text)
