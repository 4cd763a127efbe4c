"""The post-drain audit on the minicloud (issue 12 item 5).

After the moves, drain asks nova (servers by host, migration records) and
placement (allocations on the host's resource provider) whether anything
still ties servers to the host.  A leftover VERIFY_RESIZE (a server
cold-migrated away by hand, its resize never confirmed: the rig's nova runs
with ``resize_confirm_window = 0``, so nothing confirms it behind the
test's back), an orphan allocation (a made-up consumer) and a live
server's stale allocation on the host make the drain exit 1 with a row
that names the command clearing it; after that command the drain is clean.
"""

import configparser
import json
import uuid

from tests.functional import base

PLACEMENT = '1.28'


class TestDrainAudit(base.FunctionalTestCase):

    def setUp(self):
        super(TestDrainAudit, self).setUp()
        self.addCleanup(self.enable_computes, 'c01', 'c02', 'c03')

    # -- helpers ----------------------------------------------------------

    def drain(self, *args, expect=0, pre=()):
        res = self.openstack(*pre, 'compute', 'node', 'drain', 'c01',
                             '--poll-interval', '1', '-f', 'json', *args,
                             check=False)
        self.assertEqual(expect, res.returncode,
                         'exit %d\nstdout: %s\nstderr: %s' % (
                             res.returncode, res.stdout, res.stderr))
        return {r['ID']: r for r in json.loads(res.stdout)}, res.stderr

    def provider(self, host):
        [rp] = [h.id for h in self.admin_conn.compute.hypervisors(
            details=True) if h.service_details['host'] == host]
        return rp

    def allocations_on(self, host):
        rp = self.provider(host)
        return self.admin_conn.placement.get(
            '/resource_providers/%s/allocations' % rp,
            microversion=PLACEMENT).json()['allocations']

    def allocation(self, consumer):
        return self.admin_conn.placement.get(
            '/allocations/%s' % consumer, microversion=PLACEMENT).json()

    def put_allocation(self, consumer, allocations, generation=None,
                       project=None, user=None):
        resp = self.admin_conn.placement.put(
            '/allocations/%s' % consumer, json={
                'allocations': {rp: {'resources': res}
                                for rp, res in allocations.items()},
                'consumer_generation': generation,
                'project_id': project or self.state['projects']['admin'],
                'user_id': user or uuid.uuid4().hex},
            microversion=PLACEMENT)
        self.assertEqual(204, resp.status_code, resp.text)

    def open_migrations(self, host):
        return [m for m in self.admin_conn.compute.migrations(host=host)
                if m.status not in ('completed', 'confirmed', 'done',
                                    'failed', 'error', 'cancelled',
                                    'reverted')]

    def assert_clean(self, rows, err, ids):
        for sid in ids:
            self.assertEqual('moved', rows[sid]['Result'],
                             rows[sid]['Message'])
            self.assertEqual([], rows[sid]['Audit'])
        self.assertEqual([], [r for r in rows.values()
                              if r['Method'] == 'audit'])
        self.assertIn('audit: c01: clean', err)

    # -- tests ------------------------------------------------------------

    def test_rig_does_not_confirm_resizes_by_itself(self):
        # The VERIFY_RESIZE test relies on it: nova's automatic confirm
        # (resize_confirm_window > 0) would race the audit.
        conf = configparser.ConfigParser(interpolation=None)
        conf.read(self.state['nova_conf'])
        self.assertEqual('0', conf.get('DEFAULT', 'resize_confirm_window'))

    def test_clean_drain_has_a_clean_audit(self):
        running = self.create_server()
        stopped = self.create_server(stopped=True)
        # Which counts the audit used: -v (issue 23.3: not by default)
        rows, err = self.drain(pre=('-v',))
        self.assert_clean(rows, err, (running.id, stopped.id))
        # what the audit said is so
        self.assertEqual({}, self.allocations_on('c01'))
        self.assertEqual([], self.open_migrations('c01'))
        self.assertIn('0 listed by host', err)
        self.assertIn('0 allocation(s) on provider(s) %s' %
                      self.provider('c01'), err)
        self.assertIn('running_vms is not offered', err)

    def test_running_vms_below_compute_api_2_88(self):
        srv = self.create_server()
        rows, err = self.drain(pre=('--os-compute-api-version', '2.87',
                                    '-v'))
        self.assert_clean(rows, err, (srv.id,))
        self.assertIn('hypervisor running_vms 0 (compute API 2.87)', err)

    def test_unconfirmed_resize_is_a_leftover(self):
        compute = self.admin_conn.compute
        srv = self.create_server()
        # cold-migrated away by hand, never confirmed
        compute.migrate_server(srv.id)
        moved = self.wait_for_server(srv.id, 'VERIFY_RESIZE')
        self.assertNotEqual('c01', moved.compute_host)
        [m] = [m for m in compute.migrations(host='c01')
               if m.server_id == srv.id and m.status == 'finished']
        # placement keeps c01's resources for it (the migration consumer)
        self.assertIn(m.uuid, self.allocations_on('c01'))

        rows, err = self.drain(expect=1)
        row = rows[srv.id]
        self.assertEqual(('audit', 'leftover', 'c01'),
                         (row['Method'], row['Result'],
                          row['Source Compute']))
        [f] = row['Audit']
        self.assertEqual('unconfirmed-resize', f['code'])
        self.assertEqual('openstack server resize confirm %s' % srv.id,
                         f['command'])
        self.assertIn(m.uuid, f['message'])  # its allocation, with it
        self.assertIn('1 leftover(s)', err)
        # the drain confirmed nothing, nova neither
        self.assertEqual('VERIFY_RESIZE', compute.get_server(srv.id).status)

        # the command clears it: the next drain is clean
        self.openstack('server', 'resize', 'confirm', srv.id)
        self.wait_for_server(srv.id, 'ACTIVE')
        rows, err = self.drain()
        self.assertNotIn(srv.id, rows)
        self.assertIn('audit: c01: clean', err)
        self.assertNotIn(m.uuid, self.allocations_on('c01'))

    def test_orphan_and_stale_allocations_are_leftovers(self):
        placement = self.admin_conn.placement
        c01 = self.provider('c01')
        [srv] = [self.create_server()]
        # a made-up consumer: nothing in nova has its ID
        ghost = str(uuid.uuid4())
        self.put_allocation(ghost, {c01: {'MEMORY_MB': 64}})
        self.addCleanup(placement.delete, '/allocations/%s' % ghost,
                        microversion=PLACEMENT, raise_exc=False)
        # a live server on c02 that also holds 64 MB on c01
        other = self.create_server(host='c02')
        mine = self.allocation(other.id)
        allocs = {rp: a['resources'] for rp, a in
                  mine['allocations'].items()}
        self.put_allocation(other.id, dict(allocs, **{c01: {
            'MEMORY_MB': 64}}), generation=mine['consumer_generation'],
            project=mine['project_id'], user=mine['user_id'])

        rows, err = self.drain(expect=1)
        self.assertEqual('moved', rows[srv.id]['Result'],
                         rows[srv.id]['Message'])
        self.assertEqual([], rows[srv.id]['Audit'])
        orphan = rows[ghost]
        self.assertEqual(('audit', 'leftover'),
                         (orphan['Method'], orphan['Result']))
        [f] = orphan['Audit']
        self.assertEqual('orphan-allocation', f['code'])
        self.assertEqual('openstack resource provider allocation delete %s'
                         % ghost, f['command'])
        stale = rows[other.id]
        [f] = stale['Audit']
        self.assertEqual('stale-allocation', f['code'])
        # never a delete of a live server's allocation
        self.assertNotIn('allocation delete', f['command'])
        self.assertIn('allocation unset --provider %s %s' % (c01, other.id),
                      f['command'])
        self.assertIn('2 leftover(s)', err)
        # compute node show --audit says the same, on its own
        res = self.openstack('compute', 'node', 'show', 'c01', '--audit',
                             '-f', 'json', check=False)
        self.assertEqual(1, res.returncode, res.stderr)
        shown = json.loads(res.stdout)
        self.assertIs(False, shown['Audit Clean'])
        self.assertEqual({'orphan-allocation', 'stale-allocation'},
                         {f['code'] for f in shown['Audit Findings']})

        # what the commands do (osc-placement is not in this venv: the
        # same placement calls), then the drain is clean
        placement.delete('/allocations/%s' % ghost, microversion=PLACEMENT)
        mine = self.allocation(other.id)
        self.put_allocation(other.id, allocs,
                            generation=mine['consumer_generation'],
                            project=mine['project_id'],
                            user=mine['user_id'])
        rows, err = self.drain()
        self.assertIn('audit: c01: clean', err)
        shown = self.openstack('compute', 'node', 'show', 'c01', '--audit',
                               parse_json=True)
        self.assertIs(True, shown['Audit Clean'])
        self.assertEqual(['c02'], [self.admin_conn.compute.get_server(
            other.id).compute_host])
