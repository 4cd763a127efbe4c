"""The dry run's API calls do not grow with the servers (issue 12's
benchmark, benchmarks/plan.py, measures the same on the rig): every read
of nova, neutron and placement is a list per host, never a GET per
server, and the post-drain audit adds a fixed number of calls."""

import collections
import uuid

from openstack.compute.v2 import server_group as _group
from openstack.network.v2 import port as _port
import testtools

from tests.unit import fakes
from tests.unit.test_preflight import flavor
from tests.unit.test_preflight import run_drain


def calls(nova, cloud):
    """Every API call the run made, by name."""
    out = collections.Counter(name for name, _, _ in
                              nova.compute.method_calls)
    out.update('network.%s' % name for name, _, _ in
               cloud.network.method_calls)
    out.update('placement %s' % url.split('/')[-1] if
               url.startswith('/resource_providers/') else
               'placement %s' % url.split('?')[0] for url in cloud.gets)
    return out


def cloud_with(n, hosts=('c01', 'c02')):
    nova = fakes.FakeNova(hosts=('c01', 'c02', 'c03'))
    ports = []
    members = []
    for i in range(n):
        srv = nova.add('s%d' % i, host=hosts[i % len(hosts)],
                       flavor=flavor(ram=16))
        ports.append(_port.Port(
            id=str(uuid.uuid4()), device_id=srv.id,
            **{'binding:vnic_type': 'normal',
               'binding:host_id': srv.compute_host}))
        members.append(srv.id)
    group = _group.ServerGroup(id='g', name='g', policy='soft-affinity',
                               member_ids=members[::2])
    cloud = fakes.FakeCloud(nova, size={'VCPU': 10000, 'MEMORY_MB': 10 ** 6,
                                        'DISK_GB': 10 ** 5},
                            ports=ports, groups=[group])
    return nova, cloud


class TestDryRunCalls(testtools.TestCase):

    def test_dry_run_calls_do_not_grow_with_the_servers(self):
        seen = []
        for n in (4, 40):
            nova, cloud = cloud_with(n)
            reports = run_drain(cloud, hosts=('c01', 'c02'), dry_run=True)
            self.assertEqual(n, sum(len(r.items) for r in reports))
            self.assertTrue(all(r.ok for r in reports))
            seen.append(calls(nova, cloud))
        small, big = seen
        self.assertEqual(small, big)
        # per server: nothing
        for name in ('get_server', 'get_flavor', 'find_flavor',
                     'get_server_group', 'network.get_port'):
            self.assertEqual(0, big[name], name)
        # ports: one list per drained host
        self.assertEqual(2, big['network.ports'])

    def test_the_audit_adds_a_fixed_number_of_calls(self):
        seen = []
        for n in (4, 40):
            nova, cloud = cloud_with(n, hosts=('c01',))
            [report] = run_drain(cloud, hosts=('c01',))
            self.assertTrue(report.ok, [i.message for i in report.items])
            self.assertTrue(report.audit.clean, report.audit.findings)
            seen.append(report.audit.calls)
        self.assertEqual(seen[0], seen[1])
        # migrations, hypervisors, provider by name (the fake's IDs are
        # no UUIDs), provider tree, allocations; the server list is the
        # drain's own re-list
        self.assertEqual(5, seen[1])

