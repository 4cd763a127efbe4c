"""``recover-all --via-db``: the legacy SQL move against the minicloud's
real MariaDB with the real nova (cell1) and neutron schemas.

The rows moved are the test's own: instance rows inserted for a source
host whose name is full of quotes and SQL meta-characters, real neutron
ports (created through the API) whose bindings are put on that host, a
compute node row for a target host with an equally hostile name.  Every
test checks the whole ``instances``, ``ml2_port_bindings`` and
``ml2_port_binding_levels`` tables before and after, and the cleanups
delete everything the test created, so the shared cloud is left as it was.
"""

import json
import os
import shutil
import tempfile
import urllib.parse
import uuid

import pymysql

from osc_nodeops.db import errors
from osc_nodeops.db import hostmove
from osc_nodeops.db import journal
from osc_nodeops.db import url as url_mod
from tests.functional import base
from tests.functional import test_recover


def _connect(url):
    p = urllib.parse.urlsplit(url)
    return pymysql.connect(host=p.hostname, port=p.port or 3306,
                           user=urllib.parse.unquote(p.username),
                           password=urllib.parse.unquote(p.password or ''),
                           database=p.path.lstrip('/'), autocommit=True)


class _KillOnCommit(object):
    """A real PyMySQL connection whose commit first loses the connection
    (the server kills it), as a network drop at the worst moment would."""

    def __init__(self, conn, killer_url):
        self._conn = conn
        self._killer_url = killer_url

    def commit(self):
        killer = _connect(self._killer_url)
        try:
            with killer.cursor() as cur:
                cur.execute('KILL CONNECTION %s', (self._conn.thread_id(),))
        finally:
            killer.close()
        return self._conn.commit()

    def __getattr__(self, name):
        return getattr(self._conn, name)


class TestViaDB(base.FunctionalTestCase):

    def setUp(self):
        super().setUp()
        tag = uuid.uuid4().hex[:8]
        self.src = "ft-src-%s'\"; DELETE FROM instances; -- %%s \\ `x`" % tag
        self.dst = "ft-dst-%s' OR '1'='1" % tag
        self.nova_url_text = self.state['databases']['nova']
        self.neutron_url_text = self.state['databases']['neutron']
        self.nova_url = url_mod.DBURL.parse(self.nova_url_text)
        self.neutron_url = url_mod.DBURL.parse(self.neutron_url_text)
        self.nova = _connect(self.nova_url_text)
        self.addCleanup(self.nova.close)
        self.neutron = _connect(self.neutron_url_text)
        self.addCleanup(self.neutron.close)
        self.dir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.journal = os.path.join(self.dir, 'move.json')
        self._make_rows()

    # -- fixtures -------------------------------------------------------

    def _sql(self, conn, sql, params=()):
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()

    def _make_rows(self):
        self.uuids = [str(uuid.uuid4()) for _ in range(4)]
        i1, i2, i3, i4 = self.uuids
        # i1, i2 live on src; i3 is soft-deleted on src; i4 elsewhere.
        rows = [(i1, self.src, 0), (i2, self.src, 0), (i3, self.src, 7),
                (i4, 'ft-elsewhere', 0)]
        for u, host, deleted in rows:
            self._sql(self.nova,
                      'INSERT INTO instances (uuid, host, node, compute_id, '
                      'deleted, vm_state, power_state, display_name, '
                      'created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, '
                      'UTC_TIMESTAMP())',
                      (u, host, host, 99999999, deleted, 'active', 1,
                       'ft-via-db'))
        self.addCleanup(self._sql, self.nova,
                        'DELETE FROM instances WHERE uuid IN (%s, %s, %s, %s)',
                        tuple(self.uuids))
        self._sql(self.nova,
                  'INSERT INTO compute_nodes (host, hypervisor_hostname, '
                  'vcpus, memory_mb, local_gb, vcpus_used, memory_mb_used, '
                  'local_gb_used, hypervisor_type, hypervisor_version, '
                  'cpu_info, deleted, uuid, created_at) VALUES (%s, %s, 1, 1, '
                  '1, 0, 0, 0, %s, 1, %s, 0, %s, UTC_TIMESTAMP())',
                  (self.dst, self.dst + '-node', 'fake', '{}',
                   str(uuid.uuid4())))
        self.node_id = self._sql(
            self.nova, 'SELECT id FROM compute_nodes WHERE host = %s',
            (self.dst,))[0][0]
        self.addCleanup(self._sql, self.nova,
                        'DELETE FROM compute_nodes WHERE id = %s',
                        (self.node_id,))
        net = self.state['networks']['public']['id']
        self.ports = []
        for name, device in (('p1', i1), ('p2', i2), ('p3', i2),
                             ('bystander', 'dhcp' + i1[4:])):
            port = self.admin_conn.network.create_port(
                network_id=net, name='ft-via-db-' + name, device_id=device)
            self.addCleanup(self.admin_conn.network.delete_port, port.id,
                            ignore_missing=True)
            self.ports.append(port.id)
            self._sql(self.neutron,
                      'UPDATE ml2_port_bindings SET host = %s WHERE '
                      'port_id = %s', (self.src, port.id))
            self._sql(self.neutron,
                      'INSERT INTO ml2_port_binding_levels (port_id, host, '
                      'level, driver) VALUES (%s, %s, 0, %s)',
                      (port.id, self.src, 'openvswitch'))

    def _tables(self):
        """Whole tables (the columns a move may touch)."""
        return (
            sorted(self._sql(self.nova, 'SELECT uuid, host, node, compute_id,'
                             ' deleted FROM instances')),
            sorted(self._sql(self.neutron,
                             'SELECT port_id, host FROM ml2_port_bindings')),
            sorted(self._sql(self.neutron, 'SELECT port_id, host, level FROM '
                             'ml2_port_binding_levels')))

    def _diff(self, before, after):
        changed = []
        for b, a in zip(before, after):
            changed.append(sorted(set(a) - set(b)))
        return changed

    # -- tests ----------------------------------------------------------

    def test_dry_run_changes_nothing(self):
        before = self._tables()
        plan = hostmove.plan(self.nova_url, self.neutron_url, self.src,
                             self.dst)
        self.assertEqual(before, self._tables())
        self.assertEqual(sorted(self.uuids[:2]), plan.instance_uuids())
        self.assertEqual(sorted(self.ports[:3]), plan.port_ids())
        self.assertEqual(3, len(plan.levels))
        self.assertEqual([], plan.conflicts)
        self.assertTrue(plan.single_transaction)
        for st in plan.statements:
            self.assertNotIn(self.src, st.sql)
            self.assertNotIn(self.dst, st.sql)
            self.assertIn(self.src, st.params)
        self.assertFalse(os.path.exists(self.journal))

    def test_execute_moves_exactly_the_right_rows_and_undo_restores(self):
        before = self._tables()
        hostmove.execute(self.nova_url, self.neutron_url, self.src,
                         self.dst, self.journal)
        after = self._tables()
        i1, i2 = sorted(self.uuids[:2])
        new = (self.dst, self.dst + '-node', self.node_id, 0)
        self.assertEqual(
            [[(i1,) + new, (i2,) + new],
             sorted((p, self.dst) for p in self.ports[:3]),
             sorted((p, self.dst, 0) for p in self.ports[:3])],
            self._diff(before, after))
        # and nothing else: the rows that left are exactly the moved ones
        self.assertEqual(
            [2, 3, 3], [len(set(b) - set(a)) for b, a in zip(before, after)])
        doc = journal.read(self.journal)
        self.assertEqual('committed', doc['state'])
        self.assertNotIn(urllib.parse.urlsplit(
            self.nova_url_text).password, json.dumps(doc))
        # --undo through the CLI puts everything back
        rows = self.openstack(
            'server', 'recover-all', '--undo', self.journal,
            '--nova-conf', self.state['nova_conf'],
            '--neutron-conf', self.state['neutron_conf'], parse_json=True)
        restored = {r['Table']: r['Restored'] for r in rows}
        self.assertEqual({'instances': 2, 'ml2_port_bindings': 3,
                          'ml2_port_binding_levels': 3}, restored)
        self.assertEqual(before, self._tables())
        # a second undo is refused with one line, exit 1, no change
        res = self.openstack(
            'server', 'recover-all', '--undo', self.journal,
            '--nova-conf', self.state['nova_conf'],
            '--neutron-conf', self.state['neutron_conf'], check=False)
        self.assertEqual(1, res.returncode)
        self.assertIn('already undone', res.stderr)
        self.assertEqual(before, self._tables())

    def test_connection_dropped_before_commit_changes_nothing(self):
        before = self._tables()

        def kill(sess):
            killer = _connect(self.nova_url_text)
            try:
                self._sql(killer, 'KILL CONNECTION %s',
                          (sess.nova.thread_id(),))
            finally:
                killer.close()
        exc = self.assertRaises(
            errors.DBError, hostmove.execute, self.nova_url,
            self.neutron_url, self.src, self.dst, self.journal,
            before_commit=kill)
        self.assertNotIn(self.nova_url.password, str(exc))
        self.assertEqual(before, self._tables())
        self.assertEqual('rolled-back', journal.read(self.journal)['state'])

    def test_two_transactions_second_commit_lost_is_compensated(self):
        before = self._tables()
        real = url_mod.DBURL.connect

        def connector(u):
            conn = real(u)
            if u is self.neutron_url:
                return _KillOnCommit(conn, self.nova_url_text)
            return conn
        exc = self.assertRaises(
            errors.DBError, hostmove.execute, self.nova_url,
            self.neutron_url, self.src, self.dst, self.journal, mode='two',
            connector=connector)
        self.assertIn('put back', str(exc))
        self.assertEqual(before, self._tables())
        self.assertEqual('compensated', journal.read(self.journal)['state'])

    def test_conflicting_binding_refused(self):
        # the target already has a binding of one of the ports
        self._sql(self.neutron,
                  'INSERT INTO ml2_port_bindings (port_id, host, vif_type, '
                  'vnic_type, profile, vif_details, status) VALUES (%s, %s, '
                  '%s, %s, %s, %s, %s)',
                  (self.ports[0], self.dst, 'unbound', 'normal', '', '',
                   'INACTIVE'))
        before = self._tables()
        self.assertRaises(errors.DBConflict, hostmove.execute, self.nova_url,
                          self.neutron_url, self.src, self.dst, self.journal)
        self.assertEqual(before, self._tables())


class TestViaDBPlacement(test_recover._Base):
    """``recover-all --via-db`` moves each server's placement allocation
    from the dead host's resource provider to the target's (and ``--undo``
    puts it back), read through placement's API: the allocations of each
    server and the usages of both providers."""

    def _rp(self, host):
        rps = list(self.admin_conn.placement.resource_providers(name=host))
        self.assertEqual([host], [rp.name for rp in rps])
        return rps[0].id

    def _usages(self, rp):
        return dict(self.admin_conn.placement.fetch_resource_provider_usages(
            rp).usages)

    def _allocations(self, server_id):
        alloc = self.admin_conn.placement.get_allocation(server_id)
        return {rp: dict(a['resources'])
                for rp, a in (alloc.allocations or {}).items()}

    @staticmethod
    def _add(usages, resources, sign):
        out = dict(usages)
        for rc, n in resources.items():
            out[rc] = out.get(rc, 0) + sign * n
        return out

    def test_allocations_move_with_the_rows_and_undo_puts_them_back(self):
        net = self.state['networks']['public']['id']
        running = self.create_server(host='c03', network=net)
        stopped = self.create_server(host='c03', network=net, stopped=True)
        c02, c03 = self._rp('c02'), self._rp('c03')
        res = {}
        for s in (running, stopped):
            alloc = self._allocations(s.id)
            self.assertEqual([c03], list(alloc))
            res[s.id] = alloc[c03]
        self._kill('c03')
        self._wait_service('c03', 'down')
        usage2, usage3 = self._usages(c02), self._usages(c03)
        conf = ('--nova-conf', self.state['nova_conf'],
                '--neutron-conf', self.state['neutron_conf'])
        fenced = ('--confirm-fenced', 'c03')
        # dry run: nothing moves in placement either
        res_dry, dry_rows = self.recover('c03', '--dead', '--via-db',
                                         '--target-host', 'c02', *conf,
                                         *fenced)
        self.assertEqual(0, res_dry.returncode, res_dry.stderr)
        self.assertEqual((usage2, usage3),
                         (self._usages(c02), self._usages(c03)))
        jdir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, jdir, True)
        journal_path = os.path.join(jdir, 'move.json')
        out, rows = self.recover('c03', '--dead', '--via-db',
                                 '--target-host', 'c02', '--execute',
                                 '--journal', journal_path, '--timeout',
                                 '120', *conf, *fenced)
        # each server's allocation is on c02 now, nothing left on c03
        for s in (running, stopped):
            self.assertEqual({c02: res[s.id]}, self._allocations(s.id),
                             out.stderr)
        moved = {}
        for r in res.values():
            moved = self._add(moved, r, 1)
        self.assertEqual(self._add(usage2, moved, 1), self._usages(c02))
        self.assertEqual(self._add(usage3, moved, -1), self._usages(c03))
        mine = self.rows_for(rows, running, stopped)
        self.assertEqual(
            sorted([(running.id, 'move-allocation', 'moved'),
                    (stopped.id, 'move-allocation', 'moved')]),
            sorted((r['ID'], r['Method'], r['Result']) for r in mine
                   if r['Method'] == 'move-allocation'), out.stderr)
        self.assertEqual(0, out.returncode, out.stderr)
        # the dry run had planned exactly that
        self.assertEqual(
            {(running.id, 'planned'), (stopped.id, 'planned')},
            {(r['ID'], r['Result']) for r in self.rows_for(
                dry_rows, running, stopped)
             if r['Method'] == 'move-allocation'})
        doc = journal.read(journal_path)
        self.assertEqual(
            sorted([running.id, stopped.id]),
            sorted(c['consumer'] for c in doc['placement']['consumers']))
        # --undo --dry-run (issue 20 item 1) says what it would put back
        # and changes nothing: the nova and neutron rows (whole tables,
        # and MariaDB's checksum of them), the allocations and usages, the
        # journal
        state = self._everything(journal_path, running, stopped)
        dry = self.openstack('server', 'recover-all', '--undo',
                             journal_path, '--dry-run', *conf, '-f', 'json')
        self.assertEqual(state, self._everything(journal_path, running,
                                                 stopped))
        self.assertIn({'Table': 'placement allocations', 'Would Restore': 2,
                       'Already Back': 0, 'Gone': 0}, json.loads(dry.stdout))
        self.assertIn({'Table': 'instances', 'Would Restore': 2,
                       'Already Back': 0, 'Gone': 0}, json.loads(dry.stdout))
        for s in (running, stopped):
            self.assertIn('would put back instance %s: host c02 -> c03'
                          % s.id, dry.stderr)
            self.assertIn('would put back the placement allocation of %s: '
                          'c02 ' % s.id, dry.stderr)
        # --undo puts the allocations back on c03 with the rows
        undo = self.openstack('server', 'recover-all', '--undo',
                              journal_path, *conf, parse_json=True)
        self.assertIn({'Table': 'placement allocations', 'Restored': 2,
                       'Already Back': 0, 'Gone': 0}, undo)
        for s in (running, stopped):
            self.assertEqual({c03: res[s.id]}, self._allocations(s.id))
            self.assertEqual('c03', self.admin_conn.compute.get_server(
                s.id).compute_host)
        self.assertEqual((usage2, usage3),
                         (self._usages(c02), self._usages(c03)))

    def _db(self, which):
        conn = _connect(self.state['databases'][which])
        self.addCleanup(conn.close)
        return conn

    def _everything(self, journal_path, *servers):
        """The state an undo could change: the nova and neutron rows (and
        the server's checksums of those tables), each server's allocations,
        both providers' usages, the journal's bytes."""
        out = {}
        nova, neutron = self._db('nova'), self._db('neutron')
        for conn, tables in ((nova, ('instances',)),
                             (neutron, ('ml2_port_bindings',
                                        'ml2_port_binding_levels'))):
            with conn.cursor() as cur:
                for table in tables:
                    cur.execute('CHECKSUM TABLE `%s` EXTENDED' % table)
                    out['checksum ' + table] = cur.fetchall()[0][1]
                    cur.execute('SELECT * FROM `%s`' % table)
                    out[table] = sorted(map(repr, cur.fetchall()))
        for s in servers:
            out['allocations ' + s.id] = self._allocations(s.id)
        for host in ('c02', 'c03'):
            out['usages ' + host] = self._usages(self._rp(host))
        with open(journal_path, 'rb') as f:
            out['journal'] = f.read()
        return out

    def test_exclude_is_honoured_by_the_sql_move(self):
        # issue 20 item 2: --exclude S keeps S's rows, ports and allocation
        net = self.state['networks']['public']['id']
        moved = self.create_server(host='c03', network=net)
        kept = self.create_server(host='c03', network=net)
        c02, c03 = self._rp('c02'), self._rp('c03')
        kept_alloc = self._allocations(kept.id)
        self._kill('c03')
        self._wait_service('c03', 'down')
        conf = ('--nova-conf', self.state['nova_conf'],
                '--neutron-conf', self.state['neutron_conf'],
                '--confirm-fenced', 'c03')
        jdir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, jdir, True)
        journal_path = os.path.join(jdir, 'move.json')
        res, rows = self.recover('c03', '--dead', '--via-db',
                                 '--target-host', 'c02', '--exclude',
                                 kept.name, *conf)
        self.assertEqual(0, res.returncode, res.stderr)
        sql = [line for line in res.stderr.splitlines() if 'UPDATE' in line]
        self.assertTrue(sql, res.stderr)
        self.assertNotIn(kept.id, '\n'.join(sql))
        self.assertIn(moved.id, '\n'.join(sql))
        res, rows = self.recover('c03', '--dead', '--via-db',
                                 '--target-host', 'c02', '--execute',
                                 '--exclude', kept.name, '--journal',
                                 journal_path, '--timeout', '120', *conf)
        self.assertEqual(0, res.returncode, res.stderr)
        got = {(r['ID'], r['Method'], r['Result'])
               for r in self.rows_for(rows, moved, kept)}
        self.assertIn((kept.id, 'db-move', 'skipped'), got)
        self.assertEqual(set(), {g for g in got if g[0] == kept.id
                                 and g[1] != 'db-move'})
        self.assertIn((moved.id, 'db-move', 'moved'), got)
        [row] = [r for r in rows if r['ID'] == kept.id]
        self.assertIn('excluded (--exclude)', row['Message'])
        self.assertEqual('c03', self.admin_conn.compute.get_server(
            kept.id).compute_host)
        self.assertEqual('c02', self.admin_conn.compute.get_server(
            moved.id).compute_host)
        self.assertEqual(['c03'], [p.binding_host_id for p in
                                   self.admin_conn.network.ports(
                                       device_id=kept.id)])
        self.assertEqual(kept_alloc, self._allocations(kept.id))
        self.assertEqual([c02], list(self._allocations(moved.id)))
        self.assertEqual([c03], list(kept_alloc))
        doc = journal.read(journal_path)
        self.assertEqual([moved.id], [i['uuid'] for i in
                                      doc['nova']['instances']])
