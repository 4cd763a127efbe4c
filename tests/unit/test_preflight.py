"""The drain's pre-flight: blocker rules, packing, and the drain keeping
the plan's promise (issue 12 items 1 and 2)."""

from unittest import mock

from openstack.compute.v2 import server_group as _group
from openstack.network.v2 import port as _port
import testtools

from osc_nodeops.ops import drain
from osc_nodeops.ops.cloud import nova as cloud_nova
from osc_nodeops.ops.drain import preflight
from tests.unit import fakes
from tests.unit.test_engine import FakeClock


def flavor(vcpus=1, ram=512, disk=1, ephemeral=0, swap=0, **specs):
    return {'vcpus': vcpus, 'ram': ram, 'disk': disk,
            'ephemeral': ephemeral, 'swap': swap, 'extra_specs': specs,
            'original_name': 'f'}


def facts(version='2.95', **kw):
    return preflight.Facts(features=cloud_nova.Features(server_max=version),
                           draining=('c01',), **kw)


def codes(reasons, blocking_only=False):
    return sorted(r.code for r in reasons
                  if r.blocks or not blocking_only)


def port(server_id, vnic, host='c01'):
    return _port.Port(id='port-%s' % vnic, device_id=server_id,
                      **{'binding:vnic_type': vnic,
                         'binding:host_id': host})


class TestBlockerRules(testtools.TestCase):

    def test_plain_volume_backed_server_has_no_reason(self):
        srv = fakes.server(image='', flavor=flavor(disk=0))
        self.assertEqual([], preflight.blockers(srv, facts()))

    def test_local_root_ephemeral_swap_is_a_note(self):
        srv = fakes.server(flavor=flavor(ephemeral=2, swap=512))
        [r] = preflight.blockers(srv, facts())
        self.assertEqual('local-disk', r.code)
        self.assertEqual((), r.blocks)
        self.assertIn('ephemeral disk (2 GB)', r.message)
        self.assertIn('swap (512 MB)', r.message)

    def test_locked_blocks_every_move_with_the_unlock_command(self):
        srv = fakes.server(image='', locked=True, locked_reason='db')
        [r] = preflight.blockers(srv, facts())
        self.assertEqual(('locked', preflight.MOVES), (r.code, r.blocks))
        self.assertIn('openstack server unlock %s' % srv.id, r.fix)
        self.assertIn('(db)', r.message)
        self.assertTrue(r.pre_existing)

    def test_ports(self):
        srv = fakes.server(image='')
        for vnic, blocks in (('normal', None), ('direct', ()),
                             ('macvtap', ()), ('direct-physical', ('live',)),
                             ('vdpa', ('live',)),
                             ('accelerator-direct', preflight.MOVES)):
            f = facts(ports={srv.id: [port(srv.id, vnic)]})
            found = preflight.blockers(srv, f)
            if blocks is None:
                self.assertEqual([], found, vnic)
                continue
            [r] = found
            self.assertEqual(('passthrough-port', blocks), (r.code, r.blocks),
                             vnic)
            self.assertIn('port-%s' % vnic, r.message)

    def test_direct_port_before_train_blocks_live(self):
        srv = fakes.server(image='')
        f = facts(version='2.72', ports={srv.id: [port(srv.id, 'direct')]})
        [r] = preflight.blockers(srv, f)
        self.assertEqual(('live',), r.blocks)

    def test_flavor_devices(self):
        cases = {
            'pci_passthrough:alias': ('a1:1', 'pci-passthrough', ('live',)),
            'accel:device_profile': ('dp', 'accelerator', preflight.MOVES),
            'resources:CUSTOM_FPGA': ('1', 'custom-resource', ()),
        }
        for key, (value, code, blocks) in cases.items():
            srv = fakes.server(image='', flavor=flavor(disk=0,
                                                       **{key: value}))
            [r] = preflight.blockers(srv, facts())
            self.assertEqual((code, blocks), (r.code, r.blocks), key)

    def test_vgpu_depends_on_the_release(self):
        srv = fakes.server(image='', flavor=flavor(
            disk=0, **{'resources:VGPU': '1'}))
        [old] = preflight.blockers(srv, facts('2.95'))
        [new] = preflight.blockers(srv, facts('2.96'))
        self.assertEqual(('live',), old.blocks)
        self.assertEqual((), new.blocks)

    def test_pinning_numa_hugepages(self):
        srv = fakes.server(image='', flavor=flavor(disk=0, **{
            'hw:cpu_policy': 'dedicated', 'hw:numa_nodes': '2',
            'hw:mem_page_size': 'large'}))
        [train] = preflight.blockers(srv, facts('2.79'))
        self.assertEqual(('numa', ()), (train.code, train.blocks))
        for text in ('hw:cpu_policy=dedicated', 'hw:numa_nodes=2',
                     'hw:mem_page_size=large'):
            self.assertIn(text, train.message)
        [old] = preflight.blockers(srv, facts('2.65'))
        self.assertEqual(('live',), old.blocks)
        small = fakes.server(image='', flavor=flavor(
            disk=0, **{'hw:mem_page_size': 'small'}))
        self.assertEqual([], preflight.blockers(small, facts('2.65')))

    def group(self, policy, members):
        return _group.ServerGroup(id='g1', name='grp', policy=policy,
                                  members=members)

    def test_affinity_moves_together_or_not_at_all(self):
        a = fakes.server(image='')
        g = self.group('affinity', [a.id, 'b'])
        f = facts(groups={a.id: g}, hosts_of={a.id: 'c01', 'b': 'c01'})
        [r] = preflight.blockers(a, f)
        self.assertEqual(('affinity', preflight.MOVES), (r.code, r.blocks))
        self.assertIn('b', r.message)
        alone = facts(groups={a.id: self.group('affinity', [a.id])})
        [r] = preflight.blockers(a, alone)
        self.assertEqual((), r.blocks)

    def test_anti_affinity_needs_a_host_without_a_sibling(self):
        a = fakes.server(image='')
        g = self.group('anti-affinity', [a.id, 'b', 'c'])
        hosts = {a.id: 'c01', 'b': 'c02', 'c': 'c03'}
        full = facts(groups={a.id: g}, hosts_of=hosts,
                     candidates=('c02', 'c03'))
        [r] = preflight.blockers(a, full)
        self.assertEqual(preflight.MOVES, r.blocks)
        free = facts(groups={a.id: g}, hosts_of=hosts,
                     candidates=('c02', 'c03', 'c04'))
        [r] = preflight.blockers(a, free)
        self.assertEqual((), r.blocks)
        self.assertIn('c04', r.message)


class TestDemandAndPacking(testtools.TestCase):

    def test_demand_from_the_flavor(self):
        srv = fakes.server(flavor=flavor(vcpus=2, ram=2048, disk=10,
                                         ephemeral=5, swap=1000))
        self.assertEqual({'VCPU': 2, 'MEMORY_MB': 2048, 'DISK_GB': 16},
                         preflight.demand(srv))
        vol = fakes.server(image='', flavor=flavor(
            vcpus=4, ram=1024, disk=10, **{'hw:cpu_policy': 'dedicated',
                                           'resources:CUSTOM_X': '2'}))
        self.assertEqual({'PCPU': 4, 'MEMORY_MB': 1024, 'CUSTOM_X': 2},
                         preflight.demand(vol))

    def host(self, name, ram, vcpu=8, ratio=1.0, reserved=0, used=0,
             zone=None, max_unit=None):
        inv = {'MEMORY_MB': {'total': ram, 'reserved': reserved,
                             'allocation_ratio': 1.0,
                             'max_unit': max_unit or ram},
               'VCPU': {'total': vcpu, 'reserved': 0,
                        'allocation_ratio': ratio, 'max_unit': vcpu}}
        return preflight.host_from_placement(name, inv,
                                             {'MEMORY_MB': used}, zone=zone)

    def test_free_room_from_inventory_and_usage(self):
        h = self.host('c02', 4096, vcpu=4, ratio=4.0, reserved=512,
                      used=1024)
        self.assertEqual({'MEMORY_MB': 2560, 'VCPU': 16}, h.free)

    def test_largest_first_spreading_on_free_ram(self):
        hosts = [self.host('c02', 4096), self.host('c03', 3072)]
        d = [preflight.Demand('small', {'MEMORY_MB': 1024}),
             preflight.Demand('big', {'MEMORY_MB': 3072}),
             preflight.Demand('mid', {'MEMORY_MB': 2048})]
        placed = preflight.pack(d, hosts)
        self.assertEqual('c02', placed['big'][0])
        self.assertEqual('c03', placed['mid'][0])
        self.assertEqual('c02', placed['small'][0])
        # Smallest first would have failed the big one: this order fits all.
        self.assertTrue(all(p[0] for p in placed.values()))

    def test_does_not_fit_says_what_is_short(self):
        hosts = [self.host('c02', 1024)]
        placed = preflight.pack(
            [preflight.Demand('a', {'MEMORY_MB': 2048})], hosts)
        landing, why = placed['a']
        self.assertIsNone(landing)
        self.assertIn('MEMORY_MB 2048', why)
        self.assertIn('c02: MEMORY_MB 1024 free', why)

    def test_max_unit(self):
        hosts = [self.host('c02', 8192, max_unit=1024)]
        placed = preflight.pack(
            [preflight.Demand('a', {'MEMORY_MB': 2048})], hosts)
        self.assertIsNone(placed['a'][0])

    def test_anti_affinity_members_spread(self):
        hosts = [self.host('c02', 8192), self.host('c03', 8192)]
        d = [preflight.Demand(n, {'MEMORY_MB': 512}, anti_group='g')
             for n in ('a', 'b', 'c')]
        placed = preflight.pack(d, hosts)
        landed = sorted(p[0] for p in placed.values() if p[0])
        self.assertEqual(['c02', 'c03'], landed)
        [why] = [p[1] for p in placed.values() if p[0] is None]
        self.assertIn('without a member', why)

    def test_zone_and_target(self):
        hosts = [self.host('c02', 8192, zone='az1'),
                 self.host('c03', 8192, zone='az2')]
        placed = preflight.pack(
            [preflight.Demand('a', {'MEMORY_MB': 512}, zone='az2'),
             preflight.Demand('b', {'MEMORY_MB': 512}, target='c02'),
             preflight.Demand('c', {'MEMORY_MB': 512}, target='c09')],
            hosts)
        self.assertEqual('c03', placed['a'][0])
        self.assertEqual('c02', placed['b'][0])
        self.assertIsNone(placed['c'][0])


def run_drain(cloud, hosts=('c01',), **kw):
    nova = cloud.nova
    opts = drain.Options(poll_interval=1.0, retry_delay=1.0, **kw)
    services = drain.validate(nova.compute, list(hosts), opts)
    clock = FakeClock()
    return drain.drain_hosts(
        nova.compute, list(hosts), services, opts, reason_default='t',
        runtime=clock.runtime(), conn=cloud)


class TestDrainKeepsThePlan(testtools.TestCase):

    def cloud(self, **kw):
        nova = fakes.FakeNova()
        return nova, fakes.FakeCloud(
            nova, size={'VCPU': 8, 'MEMORY_MB': 4096, 'DISK_GB': 100}, **kw)

    def test_full_cloud_refuses_and_changes_nothing(self):
        nova, cloud = self.cloud(used={'c02': {'MEMORY_MB': 3072},
                                       'c03': {'MEMORY_MB': 3072}})
        big = nova.add('big', flavor=flavor(ram=2048))
        small = nova.add('small', flavor=flavor(ram=512))
        [report] = run_drain(cloud)
        self.assertTrue(report.refused)
        self.assertFalse(report.ok)
        self.assertEqual('enabled', nova.services['c01'].status)
        nova.compute.disable_service.assert_not_called()
        nova.compute.live_migrate_server.assert_not_called()
        by = {i.id: i for i in report.items}
        self.assertFalse(by[big.id].fits)
        self.assertTrue(by[small.id].fits)
        self.assertEqual('not-started', by[small.id].result)
        self.assertIn('does not fit', by[big.id].message)
        self.assertEqual({}, nova.servers[big.id].metadata)

    def test_allow_partial_moves_what_fits(self):
        nova, cloud = self.cloud(used={'c02': {'MEMORY_MB': 3072},
                                       'c03': {'MEMORY_MB': 3072}})
        big = nova.add('big', flavor=flavor(ram=2048))
        small = nova.add('small', flavor=flavor(ram=512))
        [report] = run_drain(cloud, allow_partial=True)
        self.assertFalse(report.refused)
        self.assertFalse(report.ok)
        by = {i.id: i for i in report.items}
        self.assertEqual('skipped', by[big.id].result)
        self.assertIn('capacity', by[big.id].reason)
        self.assertTrue(by[small.id].ok)
        self.assertEqual('c01', nova.servers[big.id].compute_host)
        self.assertNotEqual('c01', nova.servers[small.id].compute_host)

    def test_dry_run_exit_follows_fit(self):
        nova, cloud = self.cloud(used={'c02': {'MEMORY_MB': 3584},
                                       'c03': {'MEMORY_MB': 3584}})
        nova.add('a', flavor=flavor(ram=1024))
        [report] = run_drain(cloud, dry_run=True)
        self.assertFalse(report.ok)
        [item] = report.items
        self.assertEqual((False, None), (item.fits, item.landing))
        nova2, cloud2 = self.cloud()
        nova2.add('a', flavor=flavor(ram=1024))
        [report] = run_drain(cloud2, dry_run=True)
        self.assertTrue(report.ok)
        self.assertEqual((True, 'c02'), (report.items[0].fits,
                                         report.items[0].landing))

    def test_rolling_drain_packs_every_host_onto_one_pool(self):
        nova, cloud = self.cloud()
        nova.add('a', flavor=flavor(ram=3000))
        nova.add('b', host='c02', flavor=flavor(ram=3000))
        # c03 alone is left for two 3000 MB servers.
        reports = run_drain(cloud, hosts=('c01', 'c02'))
        self.assertTrue(all(r.refused for r in reports))
        nova.compute.disable_service.assert_not_called()

    def test_blocked_live_is_skipped_never_cold(self):
        nova, cloud = self.cloud()
        srv = nova.add('sriov')
        cloud.network.ports.side_effect = lambda **kw: iter(
            [port(srv.id, 'direct-physical')])
        [report] = run_drain(cloud, allow_skipped=True)
        [item] = report.items
        self.assertEqual('skipped', item.result)
        self.assertIn('passthrough-port', item.reason)
        nova.compute.live_migrate_server.assert_not_called()
        nova.compute.migrate_server.assert_not_called()

    def test_shutoff_with_a_live_blocker_is_cold_migrated(self):
        nova, cloud = self.cloud()
        srv = nova.add('pci', status='SHUTOFF', power_state=4,
                       flavor=flavor(**{'pci_passthrough:alias': 'a:1'}))
        [report] = run_drain(cloud)
        [item] = report.items
        self.assertEqual('cold', item.method)
        self.assertTrue(item.ok, item.message)
        self.assertEqual(['pci-passthrough', 'local-disk'],
                         [r.code for r in item.blockers])
        self.assertNotEqual('c01', nova.servers[srv.id].compute_host)

    def test_disabled_trait_and_down_hosts_are_not_candidates(self):
        nova, cloud = self.cloud(trait_disabled=('c02',))
        nova.services['c03'].state = 'down'
        nova.add('a', flavor=flavor(ram=512))
        [report] = run_drain(cloud, dry_run=True)
        self.assertFalse(report.ok)
        self.assertIn('COMPUTE_STATUS_DISABLED',
                      ' '.join(report.preflight_notes))

    def test_a_placement_out_of_reach_is_a_note(self):
        # building the placement proxy fails (no endpoint, no version
        # document): the capacity is not checked, the pre-flight says so
        nova, cloud = self.cloud()
        nova.add('a', flavor=flavor(ram=512))
        with mock.patch.object(fakes.FakeCloud, 'placement', create=True,
                               new_callable=mock.PropertyMock,
                               side_effect=ConnectionError('no endpoint')):
            [report] = run_drain(cloud, dry_run=True)
        self.assertIn('capacity not checked: placement said no endpoint',
                      report.preflight_notes)

    def test_list_calls_are_o_hosts(self):
        nova, cloud = self.cloud()
        for n in range(50):
            nova.add('s%d' % n, flavor=flavor(ram=16))
        run_drain(cloud, dry_run=True)
        self.assertEqual(0, nova.compute.get_server.call_count)
        # one provider list, inventories and usages per candidate, the
        # source host's allocations
        self.assertEqual(1 + 2 * 2 + 1, len(cloud.gets))

    def test_a_pre_pass_reads_the_candidates_once(self):
        # Issue 24: every host a drain's pre-pass planned read the
        # placement of every candidate again (2 GETs each: 2,000 per host
        # on a 1,000-host cloud) to pack onto the pool the first one read.
        nova, cloud = self.cloud(used={'c03': {'MEMORY_MB': 3584}})
        nova.add('a', flavor=flavor(ram=512))
        nova.add('b', host='c02', flavor=flavor(ram=512))
        reports = run_drain(cloud, hosts=('c01', 'c02'))
        self.assertTrue(all(r.refused for r in reports))  # b: no room
        # one provider list, inventories and usages of c03 (the one
        # candidate), and each source's allocations
        self.assertEqual(1 + 2 + 2, len(cloud.gets), cloud.gets)

    def test_demand_is_what_placement_holds_for_the_server(self):
        # A pinned flavor on a cloud without PCPU inventory: nova fell back
        # to VCPU; placement's allocation, not the flavor, says so.
        nova, cloud = self.cloud()
        srv = nova.add('pinned', flavor=flavor(
            ram=512, **{'hw:cpu_policy': 'dedicated'}))
        cloud.size['PCPU'] = 0
        [report] = run_drain(cloud, dry_run=True)
        self.assertFalse(report.items[0].fits)  # PCPU: none free
        cloud.held[srv.id] = {'VCPU': 1, 'MEMORY_MB': 512}
        [report] = run_drain(cloud, dry_run=True)
        self.assertTrue(report.items[0].fits)
        self.assertIn('numa', [r.code for r in report.items[0].blockers])

    def test_pcpu_falls_back_to_vcpu_when_no_host_has_pcpu(self):
        nova, cloud = self.cloud()
        nova.add('pinned', flavor=flavor(
            ram=512, **{'hw:cpu_policy': 'dedicated'}))
        [report] = run_drain(cloud, dry_run=True)
        self.assertTrue(report.items[0].fits)


class TestPinnedZones(testtools.TestCase):
    """Issue 20 item 10: a server pinned to an availability zone
    (``pinned_availability_zone``, compute API 2.96) is planned only onto
    hosts of that zone; an unpinned one anywhere, as nova's scheduler."""

    ZONES = {'az1': ['c01', 'c02'], 'az2': ['c03']}

    def cloud(self, version='2.96', **kw):
        nova = fakes.FakeNova(max_version=version)
        return nova, fakes.FakeCloud(
            nova, size={'VCPU': 8, 'MEMORY_MB': 4096, 'DISK_GB': 100},
            zones=self.ZONES, **kw)

    def test_pinned_server_lands_in_its_zone(self):
        # c03 (az2) has the most free RAM: the unpinned server goes there,
        # the pinned one stays in az1.
        nova, cloud = self.cloud(used={'c02': {'MEMORY_MB': 1024}})
        pinned = nova.add('pinned', flavor=flavor(ram=512),
                          pinned_availability_zone='az1')
        free = nova.add('free', flavor=flavor(ram=512))
        [report] = run_drain(cloud, dry_run=True)
        by = {i.id: i for i in report.items}
        self.assertEqual((True, 'c02'), (by[pinned.id].fits,
                                         by[pinned.id].landing))
        self.assertEqual((True, 'c03'), (by[free.id].fits,
                                         by[free.id].landing))
        # a retry goes to another host of the zone only
        self.assertEqual(('c02',), by[pinned.id].candidates)
        self.assertEqual(('c03', 'c02'), by[free.id].candidates)
        self.assertTrue(report.ok)

    def test_no_room_in_the_zone_does_not_fit(self):
        nova, cloud = self.cloud(used={'c02': {'MEMORY_MB': 4000}})
        pinned = nova.add('pinned', flavor=flavor(ram=512),
                          pinned_availability_zone='az1')
        [report] = run_drain(cloud, dry_run=True)
        [item] = report.items
        self.assertEqual((False, None), (item.fits, item.landing))
        why = str(item.capacity)
        self.assertIn('pinned to availability zone az1', why)
        self.assertIn('c02', why)
        self.assertNotIn('c03', why)
        self.assertFalse(report.ok)
        # the real drain refuses, nothing changed
        [report] = run_drain(cloud)
        self.assertTrue(report.refused)
        self.assertIn('pinned to availability zone az1',
                      report.items[0].message)
        nova.compute.live_migrate_server.assert_not_called()
        self.assertEqual('c01', nova.servers[pinned.id].compute_host)

    def test_zone_with_no_candidate_left(self):
        nova, cloud = self.cloud()
        nova.add('pinned', host='c03', flavor=flavor(ram=512),
                 pinned_availability_zone='az2')
        [report] = run_drain(cloud, hosts=('c03',), dry_run=True)
        [item] = report.items
        self.assertFalse(item.fits)
        self.assertIn('no candidate host (availability zone az2',
                      str(item.capacity))

    def test_pins_unseen_below_2_96_are_said(self):
        nova, cloud = self.cloud(version='2.95')
        nova.add('a', flavor=flavor(ram=512))
        [report] = run_drain(cloud, dry_run=True)
        self.assertTrue(report.ok)
        self.assertIn('2.96', ' '.join(report.preflight_notes))
