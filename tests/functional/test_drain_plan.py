"""The drain's pre-flight on the minicloud (issue 12 items 1 and 2).

Blockers per instance (locked, direct port, pinned flavor, server groups)
and the placement capacity check: a full cloud refuses and changes nothing,
``--allow-partial`` moves what fits.  The cloud is made full with placement
allocations of made-up consumers on c02 and c03 (what the scheduler reads),
removed by the test's cleanups; the rig's host size is left alone.

Issue 23 items 1, 2 and 6: a dry run's table fits 160 columns and its
ladder reads in run order; ``Blockers`` holds only what blocks a move, the
other pre-flight reasons are ``Notes``.
"""

import datetime
import json
import uuid

import fixtures

from osc_nodeops import timeutil
from osc_nodeops.ops import lease
from tests import tables
from tests.functional import base

# A dry run's default table (issue 23 item 1).
PLAN_VIEW = ['ID', 'Name', 'Status Before', 'Method', 'Landing', 'Fits',
             'Ladder', 'Notes', 'Message']


class TestDrainPlan(base.FunctionalTestCase):

    def setUp(self):
        super(TestDrainPlan, self).setUp()
        self.addCleanup(self.enable_computes, 'c01', 'c02', 'c03')

    # -- helpers ----------------------------------------------------------

    def drain(self, *args, expect=0):
        res = self.openstack('compute', 'node', 'drain', *args,
                             '--poll-interval', '1', '-f', 'json',
                             check=False)
        self.assertEqual(expect, res.returncode,
                         'exit %d\nstdout: %s\nstderr: %s' % (
                             res.returncode, res.stdout, res.stderr))
        return {r['ID']: r for r in json.loads(res.stdout)}, res.stderr

    def flavor(self, ram=64, **specs):
        compute = self.admin_conn.compute
        f = compute.create_flavor(name='ft-plan-%s' % uuid.uuid4().hex[:8],
                                  ram=ram, vcpus=1, disk=0)
        self.addCleanup(compute.delete_flavor, f.id, ignore_missing=True)
        if specs:
            compute.create_flavor_extra_specs(f, specs)
        return f

    def boot(self, flavor=None, host='c01', group=None, count=1):
        compute = self.admin_conn.compute
        ids = []
        for _ in range(count):
            attrs = {'name': 'ft-plan-%s' % uuid.uuid4().hex[:8],
                     'flavor_id': flavor.id if flavor else self._flavor_id(),
                     'image_id': self._image_id(), 'networks': 'none',
                     'availability_zone': 'nova:%s' % host}
            if group is not None:
                attrs['scheduler_hints'] = {'group': group.id}
            srv = compute.create_server(**attrs)
            self.addCleanup(self._delete_server, srv.id)
            ids.append(srv.id)
        return self._wait_all(ids, 'ACTIVE')

    def group(self, policy):
        compute = self.admin_conn.compute
        g = compute.create_server_group(
            name='ft-plan-%s' % uuid.uuid4().hex[:8], policy=policy)
        self.addCleanup(compute.delete_server_group, g.id,
                        ignore_missing=True)
        return g

    def providers(self):
        return {h.service_details['host']: h.id
                for h in self.admin_conn.compute.hypervisors(details=True)}

    def fill(self, host, leave_mb):
        """Placement allocations of made-up consumers on ``host`` until
        ``leave_mb`` MEMORY_MB is free; a cleanup removes them."""
        placement = self.admin_conn.placement
        rp = self.providers()[host]
        inv = placement.get('/resource_providers/%s/inventories' % rp,
                            microversion='1.28').json()['inventories']
        mem = inv['MEMORY_MB']
        used = placement.get('/resource_providers/%s/usages' % rp,
                             microversion='1.28').json()['usages']
        free = int((mem['total'] - mem['reserved']) *
                   mem['allocation_ratio']) - used.get('MEMORY_MB', 0)
        want = free - leave_mb
        while want > 0:
            chunk = min(want, mem['max_unit'])
            consumer = str(uuid.uuid4())
            resp = placement.put('/allocations/%s' % consumer, json={
                'allocations': {rp: {'resources': {'MEMORY_MB': chunk}}},
                'consumer_generation': None,
                'project_id': self.state['projects']['admin'],
                'user_id': str(uuid.uuid4()).replace('-', '')},
                microversion='1.28')
            self.assertEqual(204, resp.status_code, resp.text)
            self.addCleanup(placement.delete, '/allocations/%s' % consumer,
                            microversion='1.28')
            want -= chunk

    def on(self, host):
        return {s.id for s in self.admin_conn.compute.servers(
            all_projects=True, compute_host=host)}

    def service(self, host):
        [svc] = self.admin_conn.compute.services(host=host,
                                                 binary='nova-compute')
        return svc

    # -- tests ------------------------------------------------------------

    def test_full_cloud_refuses_then_allow_partial_moves_what_fits(self):
        big_flavor = self.flavor(ram=2048)
        [small] = self.boot()
        [big] = self.boot(big_flavor)
        self.fill('c02', 1024)
        self.fill('c03', 1024)
        rows, err = self.drain('c01', '--dry-run', expect=1)
        self.assertIs(False, rows[big.id]['Fits'])
        self.assertIsNone(rows[big.id]['Landing'])
        self.assertIs(True, rows[small.id]['Fits'])
        self.assertEqual('c02', rows[small.id]['Landing'])
        [cap] = [r for r in rows[big.id]['Blockers']
                 if r['code'] == 'capacity']
        self.assertIn('MEMORY_MB 2048', cap['message'])

        # A dead run's lease (expired): the drain writes its own over it
        # before its pre-flight (inside the lease's settle wait) and, when
        # the pre-flight refuses, puts it back as it was.
        store = lease.Store(self.admin_conn.compute)
        old = timeutil.utcnow() - datetime.timedelta(seconds=lease.TTL + 60)
        store.put('c01', lease.Holder(
            owner='ft@elsewhere:1', since=timeutil.api_time(old),
            kind='drain', token='0123456789ab',
            renewed=timeutil.api_time(old), ttl=lease.TTL))
        self.addCleanup(store.delete, 'c01')
        rows, err = self.drain('c01', expect=1)
        self.assertIn('refused', err)
        self.assertEqual(('0123456789ab', 'ft@elsewhere:1'),
                         (store.get('c01').token, store.get('c01').owner))
        self.assertEqual('enabled', self.service('c01').status)
        self.assertEqual({small.id, big.id}, self.on('c01') & {small.id,
                                                                big.id})
        self.assertEqual('not-started', rows[small.id]['Result'])
        for sid in (small.id, big.id):
            md = self.admin_conn.compute.get_server(sid).metadata
            self.assertNotIn('nodeops:drain', md)

        rows, err = self.drain('c01', '--allow-partial', expect=1)
        self.assertEqual('moved', rows[small.id]['Result'],
                         rows[small.id]['Message'])
        self.assertIn(rows[small.id]['Dest Compute'], ('c02', 'c03'))
        self.assertEqual('skipped', rows[big.id]['Result'])
        self.assertIn('capacity', rows[big.id]['Message'])
        self.assertIn(big.id, self.on('c01'))

    def test_blockers_in_the_plan(self):
        compute = self.admin_conn.compute
        [plain, locked, sriov] = self.boot(count=3)
        [pinned] = self.boot(self.flavor(**{'hw:cpu_policy': 'dedicated'}))
        compute.lock_server(locked.id, locked_reason='db migration')
        self.addCleanup(compute.unlock_server, locked.id)
        # neutron keeps binding:vnic_type even though nothing on the rig
        # binds a VF: the plan reads the port (plan only).
        net = self.state['networks']['public']['id']
        port = self.admin_conn.network.create_port(
            network_id=net, device_id=sriov.id, binding_vnic_type='direct',
            binding_host_id='c01')
        self.addCleanup(self.admin_conn.network.delete_port, port.id,
                        ignore_missing=True)
        rows, err = self.drain('c01', '--dry-run', expect=1)

        def codes(sid):
            return {r['code']: r for r in rows[sid]['Blockers']}

        def notes(sid):
            return {r['code']: r for r in rows[sid]['Notes']}

        self.assertEqual('skip', rows[locked.id]['Method'])
        self.assertIn('openstack server unlock %s' % locked.id,
                      rows[locked.id]['Message'])
        self.assertIn('db migration', codes(locked.id)['locked']['message'])
        self.assertTrue(codes(locked.id)['locked']['pre_existing'])
        # nova 2.79+ (the rig: 2.100) live-migrates direct ports and
        # pinned guests: a note, the move is planned.
        self.assertIn(port.id, notes(sriov.id)['passthrough-port'][
            'message'])
        self.assertEqual([], notes(sriov.id)['passthrough-port']['blocks'])
        self.assertEqual('live', rows[sriov.id]['Method'])
        self.assertIn('hw:cpu_policy=dedicated',
                      notes(pinned.id)['numa']['message'])
        self.assertEqual('live', rows[pinned.id]['Method'])
        self.assertIs(True, rows[pinned.id]['Fits'])
        self.assertEqual('live', rows[plain.id]['Method'])
        self.assertIs(True, rows[plain.id]['Fits'])
        self.assertIn('local-disk', notes(plain.id))
        # Issue 23 item 6: Blockers only block, Notes block nothing.
        for sid in (plain.id, sriov.id, pinned.id):
            self.assertEqual({}, codes(sid), sid)
        for row in rows.values():
            self.assertFalse([r for r in row['Notes'] if r['blocks']], row)

        # The drain keeps the plan: the locked server stays, exit 1.
        self.admin_conn.network.delete_port(port.id)
        rows, err = self.drain('c01', expect=1)
        self.assertEqual('skipped', rows[locked.id]['Result'])
        self.assertIn(locked.id, self.on('c01'))
        for sid in (plain.id, sriov.id, pinned.id):
            self.assertEqual('moved', rows[sid]['Result'],
                             rows[sid]['Message'])

    def test_dry_run_table_fits_and_reads_in_order(self):
        # Issue 23 items 1 and 2: six servers, the default format, no
        # --max-width, COLUMNS=160 (cliff fits a table only to a terminal;
        # this one is piped, so it must be narrow by itself).
        ids = {s.id for s in self.boot(count=6)}
        self.useFixture(fixtures.EnvironmentVariable('COLUMNS', '160'))
        ladder = ['--on-timeout', 'force-complete', '--on-timeout', 'abort']
        run_order = ['live', 'force-complete after 600s',
                     'abort after 300s more', 'left running after 300s more',
                     'retry 1 time(s) on another host']
        res = self.openstack('compute', 'node', 'drain', 'c01', '--dry-run',
                             *ladder, check=False)
        self.assertEqual(0, res.returncode, res.stderr)
        widths = [len(line) for line in res.stdout.splitlines()]
        self.assertLessEqual(max(widths), 160, res.stdout)
        header, rows = tables.read(res.stdout)
        self.assertEqual(PLAN_VIEW, header)
        mine = [r for r in rows if r['ID'] in ids]
        self.assertEqual(6, len(mine), res.stdout)
        for row in mine:
            self.assertEqual(('live', 'True'), (row['Method'], row['Fits']))
            self.assertEqual(run_order, row['Ladder'].splitlines())

        rows, err = self.drain('c01', '--dry-run', *ladder)
        for sid in ids:
            self.assertEqual(run_order, rows[sid]['Ladder'])
            self.assertEqual('planned', rows[sid]['Result'])
        # -f json keeps every field, not only the table's.
        self.assertIn('Project', rows[sid])
        self.assertIn('Blame Detail', rows[sid])
        self.assertEqual('enabled', self.service('c01').status)

    def test_server_groups(self):
        aff = self.group('affinity')
        a1, a2 = self.boot(group=aff, count=2)
        anti = self.group('anti-affinity')
        [x1] = self.boot(group=anti)
        self.boot(group=anti, host='c02')
        self.boot(group=anti, host='c03')
        rows, err = self.drain('c01', '--dry-run', expect=1)
        for sid, other in ((a1.id, a2.id), (a2.id, a1.id)):
            self.assertEqual('skip', rows[sid]['Method'])
            [r] = [r for r in rows[sid]['Blockers']
                   if r['code'] == 'affinity']
            self.assertIn(other, r['message'])
            self.assertEqual(['live', 'cold'], r['blocks'])
        self.assertEqual('skip', rows[x1.id]['Method'])
        [r] = [r for r in rows[x1.id]['Blockers']
               if r['code'] == 'anti-affinity']
        self.assertIn('every candidate host already holds a member',
                      r['message'])

    def test_dry_run_exit_0_when_the_plan_can_complete(self):
        [srv] = self.boot()
        rows, err = self.drain('c01', '--dry-run', expect=0)
        self.assertEqual('planned', rows[srv.id]['Result'])
        self.assertIs(True, rows[srv.id]['Fits'])
        self.assertIn(rows[srv.id]['Landing'], ('c02', 'c03'))
        self.assertEqual('enabled', self.service('c01').status)

    def test_pinned_zone_keeps_the_plan_in_the_zone(self):
        # Issue 20 item 10: a server pinned to az1 (asked for at boot;
        # compute API 2.96 shows pinned_availability_zone) is planned only
        # onto az1's hosts; an unpinned one goes where the room is.
        azs = self.state['availability_zones']
        self.assertEqual((['c01', 'c02'], ['c03']),
                         (sorted(azs['az1']), sorted(azs['az2'])))
        srv = self.admin_conn.compute.create_server(
            name='ft-plan-%s' % uuid.uuid4().hex[:8],
            flavor_id=self._flavor_id(), image_id=self._image_id(),
            networks='none', availability_zone='az1:c01')
        self.addCleanup(self._delete_server, srv.id)
        [free] = self.boot()
        pinned = self.wait_for_server(srv.id, 'ACTIVE')
        self.assertEqual(('c01', 'az1'), (pinned.compute_host,
                                          pinned.pinned_availability_zone))
        self.assertIsNone(free.pinned_availability_zone)
        # c03 (az2) has far more free RAM than c02: without the zone rule
        # both would land there.
        self.fill('c02', 1024)
        rows, err = self.drain('c01', '--dry-run', expect=0)
        self.assertEqual((True, 'c02'), (rows[pinned.id]['Fits'],
                                         rows[pinned.id]['Landing']), err)
        self.assertEqual((True, 'c03'), (rows[free.id]['Fits'],
                                         rows[free.id]['Landing']), err)

        rows, err = self.drain('c01', expect=0)
        self.assertEqual('moved', rows[pinned.id]['Result'], err)
        self.assertEqual('c02', self.admin_conn.compute.get_server(
            pinned.id).compute_host)

        # c01 is disabled now: az1 has no other host for it.
        rows, err = self.drain('c02', '--dry-run', expect=1)
        row = rows[pinned.id]
        self.assertEqual((False, None), (row['Fits'], row['Landing']), err)
        [cap] = [r for r in row['Blockers'] if r['code'] == 'capacity']
        self.assertIn('no candidate host (availability zone az1, where '
                      'the server is pinned)', cap['message'])
        self.assertEqual('enabled', self.service('c02').status)
