"""``openstack port float ...`` against the real nova and neutron of the
minicloud.

Each test makes its own shared network (admin) with an IPv4 subnet whose
pool is small (so the recovery loop is bounded by the pool, not by luck)
and an IPv6 subnet, and checks at the end which ports remain on it: no port
a command created may be left behind except the one asked for.
"""

import ctypes
import json
import os
import threading
import time
import uuid

from tests.functional import base

TAG = 'nodeops-float'
V4_CIDR = '198.51.100.0/28'
V4_POOL = ('198.51.100.2', '198.51.100.14')   # 13 addresses
V6_CIDR = '2001:db8:5f::/64'


class PortFloatTestCase(base.FunctionalTestCase):
    """A fresh shared network with a small IPv4 pool and an IPv6 subnet,
    deleted with every port on it at the end of the test."""

    def setUp(self):
        super(PortFloatTestCase, self).setUp()
        suffix = uuid.uuid4().hex[:8]
        net = self.admin_conn.network
        self.net = net.create_network(name='ft-float-%s' % suffix,
                                      shared=True)
        self.addCleanup(self._delete_network, self.net.id)
        self.v4 = net.create_subnet(
            network_id=self.net.id, ip_version=4, cidr=V4_CIDR,
            name='ft-float-v4-%s' % suffix, gateway_ip='198.51.100.1',
            allocation_pools=[{'start': V4_POOL[0], 'end': V4_POOL[1]}],
            is_dhcp_enabled=False)
        self.v6 = net.create_subnet(
            network_id=self.net.id, ip_version=6, cidr=V6_CIDR,
            name='ft-float-v6-%s' % suffix, is_dhcp_enabled=False)

    def _delete_network(self, net_id):
        net = self.admin_conn.network
        for port in list(net.ports(network_id=net_id)):
            net.delete_port(port.id, ignore_missing=True)
        net.delete_network(net_id, ignore_missing=True)

    # -- helpers ------------------------------------------------------------

    def ports_on_net(self):
        return {p.id: p for p in self.admin_conn.network.ports(
            network_id=self.net.id)}

    def float_create(self, name, *extra, cloud='minicloud'):
        row = self.openstack('port', 'float', 'create', name, '--network',
                             self.net.id, *extra, cloud=cloud,
                             parse_json=True)
        self.assertEqual(name, row['Name'])
        self.assertEqual([TAG], row['Tags'])     # a list, as in port show
        return row

    def addresses_of(self, server_id):
        server = self.admin_conn.compute.get_server(server_id)
        return sorted(a['addr'] for v in (server.addresses or {}).values()
                      for a in v)

    def delete_server_and_wait(self, server_id):
        self._delete_server(server_id)

    def _unlock_if_there(self, server_id):
        if self.admin_conn.compute.find_server(
                server_id, ignore_missing=True, all_projects=True):
            self.admin_conn.compute.unlock_server(server_id)

    def wait_port_gone(self, port_id, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.admin_conn.network.find_port(
                    port_id, ignore_missing=True) is None:
                return True
            time.sleep(1)
        return False



class TestPortFloat(PortFloatTestCase):

    def test_create_attach_detach_delete_reuse_move(self):
        # The server exists before the port, as on a running cloud.
        a = self.create_server(host='c01')
        c = self.create_server(host='c02')
        time.sleep(1.1)     # neutron's created_at has 1 s resolution
        row = self.float_create('www-%s.example.com' % uuid.uuid4().hex[:6],
                                '--description', 'web front')
        port_id = row['ID']
        addrs = row['Addresses']
        self.assertEqual(2, len(addrs))
        self.assertIn('.', addrs[0])
        self.assertIn(':', addrs[1])
        self.assertEqual('DOWN', row['Status'])

        # S13: attach to an existing server; ACTIVE, server shows both.
        row = self.openstack('port', 'float', 'attach', port_id, a.id,
                             parse_json=True)
        self.assertEqual('ACTIVE', row['Status'])
        self.assertEqual(a.id, row['Server ID'])
        self.assertEqual(sorted(addrs), self.addresses_of(a.id))

        rows = self.openstack('port', 'float', 'list', '--network',
                              self.net.id, parse_json=True)
        self.assertEqual(1, len(rows))
        # Lists in -f json (issue 23 item 5), addresses IPv4 first.
        self.assertEqual(addrs, rows[0]['Addresses'])
        self.assertEqual([TAG], rows[0]['Tags'])
        self.assertEqual(a.id, rows[0]['Server ID'])
        self.assertEqual(a.name, rows[0]['Server Name'])
        self.assertEqual('c01', rows[0]['Binding Host'])

        # Attaching it elsewhere is refused, naming the server it is on.
        res = self.openstack('port', 'float', 'attach', port_id, c.id,
                             check=False)
        self.assertEqual(1, res.returncode)
        self.assertIn('attached to server %s (%s); use port float move'
                      % (a.name, a.id), res.stderr)
        self.assertNotIn('compute:', res.stderr)
        self.assertEqual([], self.addresses_of(c.id))
        # A server that does not exist is said to be that.
        res = self.openstack('port', 'float', 'attach', port_id,
                             'no-such-server', check=False)
        self.assertEqual(1, res.returncode)
        self.assertIn("server 'no-such-server' not found", res.stderr)
        # Attaching it to the server it is on: nothing to do, exit 0.
        res = self.openstack('port', 'float', 'attach', port_id, a.id,
                             '-f', 'json')
        self.assertEqual(a.id, json.loads(res.stdout)['Server ID'])
        self.assertIn('already attached to server %s (%s); nothing to do'
                      % (a.name, a.id), res.stderr)

        # S15: detach through nova; no phantom interface on the server.
        row = self.openstack('port', 'float', 'detach', port_id,
                             parse_json=True)
        self.assertEqual(a.id, row['Detached From'])
        self.assertIsNone(row['Server ID'])
        port = self.admin_conn.network.get_port(port_id)
        self.assertEqual('', port.device_id)
        self.assertEqual('', port.device_owner)
        self.assertFalse(port.binding_host_id)
        self.assertEqual([], [i.port_id for i in
                              self.admin_conn.compute.server_interfaces(a)])
        self.assertEqual([], self.addresses_of(a.id))

        # The server goes; the address stays.
        self.delete_server_and_wait(a.id)
        port = self.admin_conn.network.get_port(port_id)
        self.assertEqual(sorted(addrs), sorted(
            f['ip_address'] for f in port.fixed_ips))

        # A new server on the port (OSC's server create --nic port-id=).
        b = self.create_server(host='c03', port=port_id)
        self.assertEqual(sorted(addrs), self.addresses_of(b.id))

        # Move it from b to c, keeping the address.
        row = self.openstack('port', 'float', 'move', port_id, c.id,
                             parse_json=True)
        self.assertEqual(c.id, row['Server ID'])
        self.assertEqual(b.id, row['Moved From'])
        self.assertEqual('ACTIVE', row['Status'])
        self.assertEqual(sorted(addrs), self.addresses_of(c.id))
        self.assertEqual([], self.addresses_of(b.id))
        self.assertEqual('c02', self.admin_conn.network.get_port(
            port_id).binding_host_id)

        # Moving onto the server it is on: nothing to do, exit 0.
        res = self.openstack('port', 'float', 'move', port_id, c.id)
        self.assertIn('already attached to server %s (%s)' % (c.name, c.id),
                      res.stderr)
        self.assertEqual(c.id, self.admin_conn.network.get_port(
            port_id).device_id)

        # Deleting b and c keeps the port: only our port is on the net.
        self.delete_server_and_wait(b.id)
        self.delete_server_and_wait(c.id)
        self.assertEqual([port_id], list(self.ports_on_net()))
        port = self.admin_conn.network.get_port(port_id)
        self.assertEqual('', port.device_id)

    def test_project_user_detach_and_move_whose_attach_fails(self):
        demo = 'minicloud-demo'
        x = self.create_server(host='c01', conn=self.demo_conn)
        y = self.create_server(host='c02', conn=self.demo_conn)
        time.sleep(1.1)     # neutron's created_at has 1 s resolution
        row = self.float_create('mv.example.com', cloud=demo)
        port_id = row['ID']
        addrs = sorted(row['Addresses'])
        row = self.openstack('port', 'float', 'attach', port_id, x.id,
                             cloud=demo, parse_json=True)
        self.assertEqual('ACTIVE', row['Status'])
        # The target is locked by the admin: nova refuses the attach.
        self.admin_conn.compute.lock_server(y.id)
        self.addCleanup(self._unlock_if_there, y.id)
        res = self.openstack('port', 'float', 'move', port_id, y.id,
                             cloud=demo, check=False)
        self.assertEqual(1, res.returncode, res.stdout)
        self.assertIn('detached from server %s (%s)' % (x.name, x.id),
                      res.stderr)
        self.assertIn('attaching it to server %s (%s) failed'
                      % (y.name, y.id), res.stderr)
        port = self.admin_conn.network.get_port(port_id)
        self.assertEqual('', port.device_id)
        self.assertEqual(addrs, sorted(f['ip_address']
                                       for f in port.fixed_ips))
        self.assertEqual([], self.addresses_of(x.id))
        self.assertEqual([], self.addresses_of(y.id))
        # Unlocked, the same move works from the detached state.
        self.admin_conn.compute.unlock_server(y.id)
        row = self.openstack('port', 'float', 'move', port_id, y.id,
                             cloud=demo, parse_json=True)
        self.assertEqual(y.id, row['Server ID'])
        self.assertIsNone(row['Moved From'])
        self.assertEqual(addrs, self.addresses_of(y.id))
        # Detach as the project user, delete the server, port stays.
        self.openstack('port', 'float', 'detach', port_id, cloud=demo)
        self.delete_server_and_wait(y.id)
        self.delete_server_and_wait(x.id)
        self.assertEqual([port_id], list(self.ports_on_net()))

    def test_port_nova_created_is_not_detached(self):
        # nova creates the port (--nic net-id): nova deletes such a port on
        # detach, so port float detach must refuse and change nothing.
        s = self.create_server(host='c01', network=self.net.id)
        [port] = list(self.admin_conn.network.ports(device_id=s.id))
        # Not ours yet: refused.
        res = self.openstack('port', 'float', 'detach', port.id,
                             check=False)
        self.assertEqual(1, res.returncode)
        self.assertIn('not a float port', res.stderr)
        self.admin_conn.network.set_tags(port, [TAG])
        res = self.openstack('port', 'float', 'detach', port.id,
                             check=False)
        self.assertEqual(1, res.returncode, res.stdout)
        self.assertIn('created by nova', res.stderr)
        self.assertEqual(1, len(res.stderr.strip().splitlines()))
        self.assertEqual(s.id, self.admin_conn.network.get_port(
            port.id).device_id)
        # The reason, observed: nova's own detach deletes that port.
        self.openstack('server', 'remove', 'port', s.id, port.id)
        self.assertTrue(self.wait_port_gone(port.id),
                        'nova kept the port it created')

    def test_recover_direct_as_admin(self):
        # A server deleted with its (nova-created) port loses the address.
        s = self.create_server(host='c01', network=self.net.id)
        [port] = list(self.admin_conn.network.ports(device_id=s.id))
        lost = [f['ip_address'] for f in port.fixed_ips
                if '.' in f['ip_address']][0]
        self.delete_server_and_wait(s.id)
        self.assertTrue(self.wait_port_gone(port.id))
        self.assertEqual({}, self.ports_on_net())

        row = self.openstack('port', 'float', 'recover', lost, '--network',
                             self.net.id, '--name', 'back.example.com',
                             parse_json=True)
        self.assertEqual('direct', row['Method'])
        self.assertEqual(1, row['Attempts'])
        self.assertIn(lost, row['Addresses'])
        self.assertEqual('back.example.com', row['Name'])
        self.assertEqual([row['ID']], list(self.ports_on_net()))
        self.assertIn(TAG, self.admin_conn.network.get_port(row['ID']).tags)

        # Held now: a second recover says by which port, and stops.
        res = self.openstack('port', 'float', 'recover', lost, '--network',
                             self.net.id, check=False)
        self.assertEqual(1, res.returncode)
        self.assertIn('held by port %s' % row['ID'], res.stderr)
        self.assertEqual([row['ID']], list(self.ports_on_net()))

    def _lose_an_address(self):
        """A pool address that was in use and is now free."""
        net = self.admin_conn.network
        tmp = net.create_port(network_id=self.net.id,
                              fixed_ips=[{'subnet_id': self.v4.id}])
        lost = tmp.fixed_ips[0]['ip_address']
        net.delete_port(tmp.id)
        return lost

    def test_recover_loop_as_project_user(self):
        lost = self._lose_an_address()
        # Someone else's ports hold part of the pool: never touched.
        pool = ['198.51.100.%d' % i for i in range(2, 15)]
        taken = [a for a in pool if a != lost][:3]
        other = [self.admin_conn.network.create_port(
            network_id=self.net.id, fixed_ips=[{'subnet_id': self.v4.id,
                                                'ip_address': a}])
            for a in taken]
        self.assertNotIn(lost, [p.fixed_ips[0]['ip_address']
                                for p in other])
        before = set(self.ports_on_net())

        res = self.openstack('port', 'float', 'recover', lost, '--network',
                             self.net.id, '--max-attempts', '13',
                             '--name', 'back.example.com', '-f', 'json',
                             cloud='minicloud-demo', check=False)
        self.assertEqual(0, res.returncode, res.stderr)
        self.assertIn('policy forbids', res.stderr)
        row = json.loads(res.stdout)
        self.assertEqual('loop', row['Method'])
        self.assertLessEqual(row['Attempts'], 10)   # 10 free addresses
        self.assertEqual(row['Attempts'] - 1, row['Ports Deleted'])
        self.assertIn(lost, row['Addresses'])
        port = self.admin_conn.network.get_port(row['ID'])
        self.assertIn(TAG, port.tags)
        self.assertEqual('back.example.com', port.name)
        self.assertEqual(self.demo_conn.current_project_id, port.project_id)
        row['id'] = row['ID']
        after = set(self.ports_on_net())
        # Exactly one new port (the kept one); the others untouched.
        self.assertEqual(before | {row['id']}, after)
        self.assertEqual([], [p for p in self.ports_on_net().values()
                              if p.name.startswith('nodeops-recover-')])

    def test_recover_held_by_invisible_port_loop_cleans_up(self):
        # The address is held by the admin's port, which the project user
        # cannot see: direct is forbidden, the loop runs out of pool (13
        # addresses) and neutron refuses more; every port it made goes.
        held = self.admin_conn.network.create_port(
            network_id=self.net.id, fixed_ips=[{'subnet_id': self.v4.id}])
        address = held.fixed_ips[0]['ip_address']
        before = set(self.ports_on_net())
        res = self.openstack('port', 'float', 'recover', address,
                             '--network', self.net.id, '--max-attempts',
                             '20', cloud='minicloud-demo', check=False)
        self.assertEqual(1, res.returncode)
        self.assertIn('not done', res.stderr)
        self.assertEqual(before, set(self.ports_on_net()))
        # As admin it is visible: named, and nothing is created.
        res = self.openstack('port', 'float', 'recover', address,
                             '--network', self.net.id, check=False)
        self.assertEqual(1, res.returncode)
        self.assertIn('held by port %s' % held.id, res.stderr)
        self.assertEqual(before, set(self.ports_on_net()))

    def test_bad_input_changes_nothing(self):
        before = set(self.ports_on_net())
        cases = [
            (('port', 'float', 'create', 'x', '--network', 'no-such-net'),
             'not found', 1),
            (('port', 'float', 'create', 'x', '--network', self.net.id,
              '--fixed-ip', 'ip-address=10.9.9.9'), 'outside every subnet',
             1),
            # usage errors found after argparse exit 2, as argparse's own
            (('port', 'float', 'create', 'x', '--network', self.net.id,
              '--fixed-ip', 'ip-address=999.1.1.1'), 'not an IP address',
             2),
            (('port', 'float', 'recover', '198.51.100.999', '--network',
              self.net.id), 'not an IP address', 2),
            (('port', 'float', 'recover', '192.0.2.200', '--network',
              self.net.id), 'outside every subnet', 1),
            (('port', 'float', 'attach', 'no-such-port', 'x'), 'not found',
             1),
        ]
        for argv, text, status in cases:
            res = self.openstack(*argv, check=False)
            self.assertEqual(status, res.returncode, argv)
            self.assertIn(text, res.stderr, argv)
            self.assertEqual(1, len(res.stderr.strip().splitlines()),
                             res.stderr)
        self.assertEqual(before, set(self.ports_on_net()))
        # A server of another project: invisible to the project user.
        s = self.create_server(host='c01')
        row = self.float_create('d.example.com', cloud='minicloud-demo')
        res = self.openstack('port', 'float', 'attach', row['ID'], s.id,
                             cloud='minicloud-demo', check=False)
        self.assertEqual(1, res.returncode)
        self.assertIn('not found', res.stderr)
        self.assertEqual('', self.admin_conn.network.get_port(
            row['ID']).device_id)

    def test_check_reports_each_address_within_timeout(self):
        # Only 127.0.0.1 may be a network target on this machine and
        # neutron refuses loopback subnets, so the connections are made
        # from a private network namespace (only a down lo): the real
        # port lookup and the real socket code, no packet leaves.
        from osc_nodeops.ops import port_float as pf
        row = self.float_create('chk.example.com')
        res = self.openstack('port', 'float', 'check', row['ID'],
                             '--tcp-port', '0', check=False)
        self.assertEqual(2, res.returncode)

        def isolated_probe(address, tcp_port, timeout):
            out = {}

            def run():
                libc = ctypes.CDLL(None, use_errno=True)
                if libc.unshare(0x40000000) != 0:    # CLONE_NEWNET
                    out['error'] = os.strerror(ctypes.get_errno())
                    return
                out['r'] = pf.probe(address, tcp_port, timeout)
            t = threading.Thread(target=run)
            t.start()
            t.join()
            if 'error' in out:
                self.skipTest('cannot make a network namespace: %s'
                              % out['error'])
            return out['r']

        start = time.monotonic()
        rows = pf.check(self.admin_conn, row['ID'], tcp_port=22, timeout=2,
                        probe_fn=isolated_probe)
        elapsed = time.monotonic() - start
        self.assertEqual(row['Addresses'],
                         [r['address'] for r in rows])
        self.assertEqual([4, 6], [r['ip_version'] for r in rows])
        self.assertEqual({'unreachable'}, {r['result'] for r in rows})
        self.assertLess(elapsed, 2 * 2 + 5)
