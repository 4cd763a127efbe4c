"""The host lease (ops/lease.py, issue 20 item 4) on the minicloud: real
nova, real concurrent processes."""

import datetime
import json
import time

from osc_nodeops import timeutil
from osc_nodeops.ops import lease
from tests.functional import base

OTHER = 'ft@elsewhere:1'


class TestLease(base.FunctionalTestCase):

    def setUp(self):
        super(TestLease, self).setUp()
        # Hosts enabled and their leases gone, whatever happens.
        self.addCleanup(self.enable_computes, 'c01', 'c02', 'c03')
        self.clear_leases('c01', 'c02', 'c03')

    def popen(self, *args):
        return self.popen_cli(*args, '--poll-interval', '1', '-f', 'json')

    def run_cli(self, *args, expect=0):
        res = self.openstack(*args, check=False)
        self.assertEqual(expect, res.returncode,
                         'exit %d\nstdout: %s\nstderr: %s' % (
                             res.returncode, res.stdout, res.stderr))
        return res

    def service(self, host):
        [svc] = self.admin_conn.compute.services(host=host,
                                                 binary='nova-compute')
        return svc

    def put_lease(self, host='c01', renewed=None, kind='drain'):
        """A lease of another run, as ``lease.Store`` writes it."""
        renewed = renewed or timeutil.utcnow()
        held = lease.Holder(owner=OTHER, since=timeutil.api_time(renewed),
                            kind=kind, token='0123456789ab',
                            renewed=timeutil.api_time(renewed),
                            ttl=lease.TTL)
        lease.Store(self.admin_conn.compute).put(host, held)
        return held

    def moves_from(self, server_id, host='c01'):
        return [m for m in self.admin_conn.compute.migrations(
            instance_uuid=server_id) if m.source_compute == host]

    def test_two_drains_100ms_apart_exactly_one_proceeds(self):
        servers = self.create_servers(2, host='c01')
        ids = {s.id for s in servers}
        first = self.popen('compute', 'node', 'drain', 'c01')
        time.sleep(0.1)
        second = self.popen('compute', 'node', 'drain', 'c01')
        results = {}
        for proc in (first, second):
            out, err = proc.communicate(timeout=600)
            results[proc.pid] = (proc.returncode, out, err)
        codes = sorted(r[0] for r in results.values())
        self.assertEqual([0, 1], codes, results)
        [winner] = [pid for pid, r in results.items() if r[0] == 0]
        [loser] = [r for r in results.values() if r[0] == 1]
        refusals = [line for line in loser[2].splitlines()
                    if 'held by another osc-nodeops drain' in line]
        self.assertEqual(1, len(refusals), loser[2])
        self.assertIn(':%d' % winner, refusals[0])  # USER@MACHINE:PID
        rows = json.loads(results[winner][1])
        self.assertEqual(ids, {r['ID'] for r in rows
                               if r['Result'] == 'moved'})
        for srv in servers:  # moved once, by the winner only
            self.assertEqual(1, len(self.moves_from(srv.id)), srv.id)
        self.assertIsNone(self.lease_of('c01'))  # released at the end

    def test_undrain_migrate_back_holds_the_lease_while_moving(self):
        servers = self.create_servers(2, host='c01')
        ids = {s.id for s in servers}
        self.run_cli('compute', 'node', 'drain', 'c01',
                     '--poll-interval', '1')
        self.assertFalse(ids & {s.id for s in self.admin_conn.compute
                                .servers(all_projects=True,
                                         compute_host='c01')})
        for s in servers:  # each move home takes 10 s on the rig
            self.admin_conn.compute.set_server_metadata(
                s.id, **{'minicloud:live-migration': 'slow:10'})
        undrain = self.popen('compute', 'node', 'undrain', 'c01',
                             '--migrate-back', '--max-parallel', '1')
        deadline = time.time() + 120
        while time.time() < deadline and undrain.poll() is None:
            if any(s.task_state == 'migrating' for s in
                   self.admin_conn.compute.servers(all_projects=True)
                   if s.id in ids):
                break
            time.sleep(0.2)
        self.assertIsNone(undrain.poll(), 'the undrain ended too soon')
        # enabled (the scheduler needs it) and still held
        self.assertEqual('enabled', self.service('c01').status)
        held = self.lease_of('c01')
        self.assertEqual(('undrain', ':%d' % undrain.pid),
                         (held.kind, held.owner[-len(':%d' %
                                                     undrain.pid):]))
        res = self.run_cli('compute', 'node', 'drain', 'c01', expect=1)
        self.assertIn('held by another osc-nodeops undrain', res.stderr)
        self.assertIsNone(undrain.poll(), 'undrain ended before the check')
        self.assertEqual('enabled', self.service('c01').status)
        out, err = undrain.communicate(timeout=300)
        self.assertEqual(0, undrain.returncode, err)
        self.assertEqual(ids, {r['ID'] for r in json.loads(out)
                               if r['Result'] == 'moved'})
        self.assertIsNone(self.lease_of('c01'))  # released at the end

    def test_expired_taken_over_live_needs_break_lease(self):
        now = timeutil.utcnow()
        # a live lease of another machine: shown, and refused
        held = self.put_lease(renewed=now)
        rows = {r['Host']: r for r in self.openstack(
            'compute', 'node', 'list', '--long', parse_json=True)}
        self.assertEqual((OTHER, timeutil.api_time(held.expires)),
                         (rows['c01']['Lease Owner'],
                          rows['c01']['Lease Expires']))
        res = self.run_cli('compute', 'node', 'drain', 'c01', expect=1)
        self.assertIn('held by another osc-nodeops drain (%s' % OTHER,
                      res.stderr)
        self.assertIn('--break-lease', res.stderr)
        self.assertEqual('enabled', self.service('c01').status)
        self.assertEqual(OTHER, self.lease_of('c01').owner)
        res = self.run_cli('compute', 'node', 'drain', 'c01',
                           '--break-lease')
        self.assertIn('broke the drain lease of %s' % OTHER, res.stderr)
        self.assertIsNone(self.lease_of('c01'))
        self.run_cli('compute', 'node', 'undrain', 'c01')
        # a lease not renewed for longer than its TTL: taken over
        old = now - datetime.timedelta(seconds=lease.TTL + 60)
        self.put_lease(renewed=old)
        res = self.run_cli('compute', 'node', 'drain', 'c01')
        self.assertIn('took over the drain lease of %s' % OTHER, res.stderr)
        self.assertIn('expired', res.stderr)
        self.assertEqual('disabled', self.service('c01').status)
        self.assertIsNone(self.lease_of('c01'))

    def test_refused_drain_of_two_hosts_puts_back_what_it_overwrote(self):
        # Failed on b37f8bd: a drain of c01 and c02 refused by c02's live
        # lease deleted the entry it had written over on c01: the expired
        # lease of a dead run, which a later takeover reads.
        now = timeutil.utcnow()
        old = now - datetime.timedelta(seconds=lease.TTL + 60)
        self.put_lease('c01', renewed=old)
        self.put_lease('c02', renewed=now)
        res = self.run_cli('compute', 'node', 'drain', 'c01', 'c02',
                           expect=1)
        self.assertIn('c02 is held by another osc-nodeops drain (%s'
                      % OTHER, res.stderr)
        for host, renewed in (('c01', old), ('c02', now)):
            held = self.lease_of(host)
            self.assertEqual((OTHER, '0123456789ab',
                              timeutil.api_time(renewed)),
                             (held.owner, held.token, held.renewed), host)
            self.assertEqual('enabled', self.service(host).status)

    def test_recover_all_refuses_a_leased_host(self):
        [srv] = self.create_servers(1, host='c01', stopped=True)
        self.put_lease(kind='maintain')
        res = self.run_cli('server', 'recover-all', 'c01', '--all',
                           expect=1)
        self.assertIn('held by another osc-nodeops maintain (%s' % OTHER,
                      res.stderr)
        self.assertEqual('SHUTOFF',
                         self.admin_conn.compute.get_server(srv.id).status)
        self.assertEqual(OTHER, self.lease_of('c01').owner)
        res = self.run_cli('server', 'recover-all', 'c01', '--all',
                           '--break-lease', '--poll-interval', '1')
        self.assertEqual('ACTIVE',
                         self.admin_conn.compute.get_server(srv.id).status)
        self.assertIsNone(self.lease_of('c01'))
