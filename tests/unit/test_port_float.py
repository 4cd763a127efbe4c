"""Unit tests of osc_nodeops.ops.port_float (in-memory neutron and nova)."""

import socket
import threading
import time

import fixtures
import testtools

from openstack import exceptions as sdk_exc

from osc_nodeops import errors
from osc_nodeops import timeutil
from osc_nodeops.ops import port_float as pf
from osc_nodeops.ops.port_float import base as pf_base
from tests.unit import test_port_float_fakes as fakes

V4 = {'cidr': '203.0.113.0/24', 'name': 'public-v4'}
V6 = {'cidr': '2001:db8::/64', 'name': 'public-v6'}


class Base(testtools.TestCase):

    def setUp(self):
        super(Base, self).setUp()
        self.conn = fakes.FakeConn()
        self.neutron = self.conn.neutron
        self.nova = self.conn.nova
        self.net = self.neutron.add_network('public', [V4, V6])
        self.events = []

    def emit(self, message):
        self.events.append(message)

    def float_port(self, ips=('203.0.113.10', '2001:db8::10'), **kw):
        kw.setdefault('name', 'www.example.com')
        kw.setdefault('created_at', '2026-01-01T00:00:00Z')
        return self.neutron.add_port(self.net, ips, tags=[pf.TAG], **kw)


class TestCreate(Base):

    def test_create_tags_and_reports_all_addresses(self):
        row = pf.create(self.conn, 'www.example.com', 'public',
                        events=self.emit)
        self.assertIn(pf.TAG, row['tags'])
        self.assertEqual('www.example.com', row['name'])
        self.assertEqual(['created float port %s with %s' % (
            row['id'], ', '.join(row['addresses']))], self.events)
        self.assertEqual(2, len(row['addresses']))
        self.assertEqual(4, len(row['addresses'][0].split('.')))
        self.assertIn(':', row['addresses'][1])

    def test_create_with_fixed_ip(self):
        row = pf.create(self.conn, 'a.example.com', 'public',
                        [{'ip-address': '203.0.113.77'}], 'web')
        self.assertEqual(['203.0.113.77'], row['addresses'])
        self.assertEqual('web', row['description'])

    def _refused(self, *args):
        before = dict(self.neutron.ports)
        exc = self.assertRaises(errors.NodeOpsError, pf.create, self.conn,
                                *args)
        self.assertEqual(before, self.neutron.ports)
        self.neutron.proxy.create_port.assert_not_called()
        self.assertNotIn('\n', str(exc))
        return str(exc)

    def test_bad_inputs_change_nothing(self):
        self.assertIn("network 'nope' not found",
                      self._refused('x', 'nope'))
        self.assertIn('not an IP address', self._refused(
            'x', 'public', [{'ip-address': '203.0.113.999'}]))
        self.assertIn('outside every subnet', self._refused(
            'x', 'public', [{'ip-address': '198.51.100.1'}]))
        self.assertIn('not a subnet of network', self._refused(
            'x', 'public', [{'subnet': 'other'}]))
        self.assertIn('not in subnet', self._refused(
            'x', 'public', [{'subnet': 'public-v6',
                             'ip-address': '203.0.113.5'}]))
        self.assertIn('takes subnet=', self._refused(
            'x', 'public', [{'ip': '203.0.113.5'}]))
        self.assertIn('needs a name', self._refused(' ', 'public'))

    def test_duplicate_name_and_held_address_refused(self):
        port = self.float_port()
        self.assertIn(port.id, self._refused('www.example.com', 'public'))
        msg = self._refused('b.example.com', 'public',
                            [{'ip-address': '203.0.113.10'}])
        self.assertIn('held by port %s' % port.id, msg)

    def test_tag_failure_deletes_the_new_port(self):
        self.neutron.fail_tags = True
        self.assertRaises(errors.Refused, pf.create, self.conn,
                          'x.example.com', 'public')
        self.assertEqual({}, self.neutron.ports)
        self.assertEqual(1, len(self.neutron.deleted))


class TestList(Base):

    def test_lists_only_float_ports_with_server(self):
        server = self.nova.add_server('web1')
        port = self.float_port()
        self.nova.plug(server, port)
        self.neutron.add_port(self.net, ['203.0.113.50'])   # not ours
        other = self.neutron.add_network('other', [{'cidr': '10.0.0.0/24'}])
        self.neutron.add_port(other, ['10.0.0.5'], tags=[pf.TAG])
        rows = pf.list_ports(self.conn, network='public')
        self.assertEqual(1, len(rows))
        self.assertEqual(port.id, rows[0]['id'])
        self.assertEqual('web1', rows[0]['server_name'])
        self.assertEqual(server.id, rows[0]['server_id'])
        self.assertEqual('c01', rows[0]['binding_host'])
        self.assertEqual(2, len(pf.list_ports(self.conn)))


class TestNovaCreated(testtools.TestCase):

    class P(object):
        def __init__(self, created_at):
            self.created_at = created_at

    def reqs(self, *pairs):
        return [(timeutil.parse_time(a), timeutil.parse_time(b))
                for a, b in pairs]

    def test_port_before_server_is_passed(self):
        r = self.reqs(('2026-01-01T00:00:10.5', '2026-01-01T00:00:20'))
        self.assertFalse(pf.nova_created(self.P('2026-01-01T00:00:09Z'), r))

    def test_port_made_during_build_is_nova_created(self):
        r = self.reqs(('2026-01-01T00:00:10.5', '2026-01-01T00:00:20'))
        self.assertTrue(pf.nova_created(self.P('2026-01-01T00:00:12Z'), r))

    def test_same_second_is_ambiguous_so_unsafe(self):
        r = self.reqs(('2026-01-01T00:00:10.5', '2026-01-01T00:00:20'))
        self.assertTrue(pf.nova_created(self.P('2026-01-01T00:00:10Z'), r))

    def test_port_made_between_requests_and_attached_later_is_passed(self):
        r = self.reqs(('2026-01-01T00:00:10.5', '2026-01-01T00:00:20'),
                      ('2026-01-01T00:01:00.1', '2026-01-01T00:01:02'))
        self.assertFalse(pf.nova_created(self.P('2026-01-01T00:00:40Z'), r))

    def test_port_made_during_attach_is_nova_created(self):
        r = self.reqs(('2026-01-01T00:00:10.5', '2026-01-01T00:00:20'),
                      ('2026-01-01T00:01:00.1', '2026-01-01T00:01:02'))
        self.assertTrue(pf.nova_created(self.P('2026-01-01T00:01:01Z'), r))

    def test_port_made_after_every_request_is_unknown(self):
        r = self.reqs(('2026-01-01T00:00:10.5', '2026-01-01T00:00:20'))
        self.assertTrue(pf.nova_created(self.P('2026-01-01T00:05:00Z'), r))

    def test_missing_data_is_unsafe(self):
        r = self.reqs(('2026-01-01T00:00:10.5', None))
        self.assertTrue(pf.nova_created(self.P('2026-01-01T00:00:30Z'), r))
        self.assertTrue(pf.nova_created(self.P(None), r))
        self.assertTrue(pf.nova_created(self.P('2026-01-01T00:00:01Z'), []))


class TestAttachDetachMove(Base):

    def setUp(self):
        super(TestAttachDetachMove, self).setUp()
        self.a = self.nova.add_server('a')
        self.b = self.nova.add_server('b')

    def test_attach_waits_and_reports(self):
        port = self.float_port()
        row = pf.attach(self.conn, 'www.example.com', 'a', timeout=5,
                        events=self.emit, interval=0)
        self.assertEqual(self.a.id, row['server_id'])
        self.assertEqual('ACTIVE', row['status'])
        self.nova.proxy.create_server_interface.assert_called_once_with(
            self.a, port_id=port.id)

    def test_attach_refuses_attached_port_and_unknown_server(self):
        port = self.float_port()
        self.nova.plug(self.a, port)
        exc = self.assertRaises(errors.Refused, pf.attach, self.conn,
                                port.id, 'b', timeout=1)
        self.assertIn('port float move', str(exc))
        # the server it is on, by name and ID (not "compute:nova")
        self.assertIn('attached to server a (%s)' % self.a.id, str(exc))
        self.assertNotIn('compute:', str(exc))
        # an unknown server is named as such, even for an attached port
        exc = self.assertRaises(errors.NotFound, pf.attach, self.conn,
                                port.id, 'zzz', timeout=1)
        self.assertIn("server 'zzz' not found", str(exc))
        port.device_id = ''
        exc = self.assertRaises(errors.NotFound, pf.attach, self.conn,
                                port.id, 'zzz', timeout=1)
        self.assertIn("server 'zzz' not found", str(exc))
        self.nova.proxy.create_server_interface.assert_not_called()

    def test_attach_to_the_server_it_is_on_is_a_no_op(self):
        port = self.float_port()
        self.nova.plug(self.a, port)
        row = pf.attach(self.conn, port.id, 'a', events=self.emit)
        self.assertEqual(self.a.id, row['server_id'])
        self.assertEqual(['port %s is already attached to server a (%s); '
                          'nothing to do' % (port.id, self.a.id)],
                         self.events)
        self.nova.proxy.create_server_interface.assert_not_called()

    def test_not_ours_refused(self):
        port = self.neutron.add_port(self.net, ['203.0.113.20'])
        for call in (lambda: pf.attach(self.conn, port.id, 'a'),
                     lambda: pf.detach(self.conn, port.id),
                     lambda: pf.move(self.conn, port.id, 'b'),
                     lambda: pf.check(self.conn, port.id)):
            exc = self.assertRaises(errors.Refused, call)
            self.assertIn('not a float port', str(exc))
        self.nova.proxy.create_server_interface.assert_not_called()
        self.nova.proxy.delete_server_interface.assert_not_called()

    def test_attach_timeout_is_incomplete(self):
        self.float_port()
        self.nova.port_goes_active = False
        exc = self.assertRaises(errors.Incomplete, pf.attach,
                                self.conn, 'www.example.com', 'a',
                                timeout=0.01, interval=0)
        self.assertIn('DOWN', str(exc))

    def _attach_passed(self):
        # Created before the server: certainly passed to nova.
        port = self.float_port(created_at='2026-01-01T00:00:05Z')
        self.nova.plug(self.a, port)
        return port

    def test_detach_through_nova_keeps_the_port(self):
        port = self._attach_passed()
        row = pf.detach(self.conn, port.id, timeout=5,
                        events=self.emit, interval=0)
        self.nova.proxy.delete_server_interface.assert_called_once_with(
            port.id, server=self.a.id, ignore_missing=False)
        self.assertIn(port.id, self.neutron.ports)
        self.assertEqual('', self.neutron.ports[port.id].device_id)
        self.assertEqual(['203.0.113.10', '2001:db8::10'], row['addresses'])
        self.assertEqual(self.a.id, row['detached_from'])
        self.neutron.proxy.update_port.assert_not_called()

    def test_detach_refuses_port_nova_may_have_created(self):
        port = self.float_port(created_at='2026-01-01T00:00:12Z')
        self.nova.plug(self.a, port)
        exc = self.assertRaises(errors.Refused, pf.detach, self.conn,
                                port.id, timeout=1)
        self.assertIn('created by nova', str(exc))
        self.assertIn('nothing changed', str(exc))
        self.nova.proxy.delete_server_interface.assert_not_called()
        self.assertEqual(self.a.id, port.device_id)

    def test_detach_reads_actions_at_2_58_and_stops_if_it_cannot(self):
        port = self._attach_passed()
        pf.detach(self.conn, port.id, timeout=5, interval=0)
        self.nova.proxy.get.assert_called_once_with(
            '/servers/%s/os-instance-actions' % self.a.id,
            microversion='2.58')
        self.nova.plug(self.a, port)
        del self.nova.actions[self.a.id]          # nova answers 404
        self.nova.proxy.delete_server_interface.reset_mock()
        exc = self.assertRaises(errors.Refused, pf.detach, self.conn,
                                port.id)
        self.assertIn('cannot read the actions', str(exc))
        self.nova.proxy.delete_server_interface.assert_not_called()

    def test_detach_unattached_is_a_no_op(self):
        port = self.float_port()
        row = pf.detach(self.conn, port.id, events=self.emit)
        self.assertIsNone(row['detached_from'])
        self.assertEqual(['port %s was not attached; nothing to do' %
                          port.id], self.events)
        self.nova.proxy.delete_server_interface.assert_not_called()

    def test_detach_refuses_non_server_owner_and_invisible_server(self):
        port = self.float_port()
        port.device_id, port.device_owner = 'r1', 'network:router_interface'
        self.assertRaises(errors.Refused, pf.detach, self.conn, port.id)
        port.device_id, port.device_owner = 'gone', 'compute:nova'
        exc = self.assertRaises(errors.Refused, pf.detach, self.conn,
                                port.id)
        self.assertIn('cannot see', str(exc))
        self.nova.proxy.delete_server_interface.assert_not_called()

    def test_detach_nova_refusal_is_one_line(self):
        port = self._attach_passed()
        self.nova.proxy.delete_server_interface.side_effect = (
            sdk_exc.ConflictException(message='Cannot detach\nwhile busy',
                                      http_status=409))
        exc = self.assertRaises(errors.Refused, pf.detach, self.conn,
                                port.id)
        self.assertNotIn('\n', str(exc))

    def test_move(self):
        port = self._attach_passed()
        row = pf.move(self.conn, port.id, 'b', timeout=5, events=self.emit,
                      interval=0)
        self.assertEqual(self.b.id, row['server_id'])
        self.assertEqual(self.a.id, row['moved_from'])
        self.assertEqual({'public': []}, self.a.addresses)

    def test_move_to_same_server_is_a_no_op(self):
        port = self._attach_passed()
        row = pf.move(self.conn, port.id, 'a', events=self.emit)
        self.assertEqual((self.a.id, None),
                         (row['server_id'], row['moved_from']))
        self.assertIn('already attached to server a', self.events[-1])
        self.nova.proxy.delete_server_interface.assert_not_called()

    def test_move_to_unknown_server_changes_nothing(self):
        port = self._attach_passed()
        self.assertRaises(errors.Refused, pf.move, self.conn, port.id,
                          'zzz')
        self.nova.proxy.delete_server_interface.assert_not_called()
        self.assertEqual(self.a.id, port.device_id)

    def _flaky_get_port(self, failures, status=503):
        """get_port answers STATUS FAILURES times, then for real."""
        real = self.neutron.get_port
        left = [failures]

        def get_port(port):
            if left[0]:
                left[0] -= 1
                raise sdk_exc.HttpException(message='Service Unavailable',
                                            http_status=status)
            return real(port)
        self.neutron.proxy.get_port.side_effect = get_port
        return left

    def test_waits_ride_out_a_5xx(self):
        port = self.float_port()
        left = self._flaky_get_port(2)
        row = pf.attach(self.conn, port.id, 'a', timeout=5, interval=0)
        self.assertEqual((0, 'ACTIVE'), (left[0], row['status']))

    def test_move_keeps_its_message_when_a_wait_fails_raw(self):
        # a 4xx in the attach wait is no transient fault: the move stops,
        # and says the port left its server and keeps its addresses
        port = self._attach_passed()
        real_attach = self.nova.attach

        def attach(server, **attrs):
            result = real_attach(server, **attrs)
            self._flaky_get_port(1, status=404)
            return result
        self.nova.proxy.create_server_interface.side_effect = attach
        exc = self.assertRaises(errors.Incomplete, pf.move, self.conn,
                                port.id, 'b', timeout=5, interval=0)
        self.assertIn('detached from server a (%s) and keeps 203.0.113.10'
                      % self.a.id, str(exc))
        self.assertIn('404', str(exc))

    def test_move_attach_failure_leaves_port_detached_and_says_so(self):
        port = self._attach_passed()
        self.nova.refuse_attach = sdk_exc.ConflictException(
            message='instance busy', http_status=409)
        exc = self.assertRaises(errors.Incomplete, pf.move, self.conn,
                                port.id, 'b', timeout=5, interval=0)
        self.assertIn('detached from server a (%s)' % self.a.id, str(exc))
        self.assertIn('attaching it to server b (%s) failed' % self.b.id,
                      str(exc))
        self.assertIn('203.0.113.10', str(exc))
        self.assertIn(port.id, self.neutron.ports)
        self.assertEqual('', port.device_id)


class TestRecover(Base):

    def picker(self, sequence):
        seq = iter(sequence)

        def pick(subnet, used):
            return next(seq)
        return pick

    def test_direct(self):
        row = pf.recover(self.conn, '203.0.113.42', 'public', name='w.ex',
                         events=self.emit)
        self.assertEqual('direct', row['method'])
        self.assertEqual(1, row['attempts'])
        self.assertEqual(['203.0.113.42'], row['addresses'])
        self.assertEqual('w.ex', row['name'])
        self.assertIn(pf.TAG, row['tags'])
        self.assertEqual(1, len(self.neutron.ports))

    def test_held_by_visible_port_stops(self):
        port = self.float_port()
        exc = self.assertRaises(errors.Refused, pf.recover, self.conn,
                                '203.0.113.10', 'public')
        self.assertIn('held by port %s' % port.id, str(exc))
        self.neutron.proxy.create_port.assert_not_called()

    def test_held_by_invisible_port_stops(self):
        def hidden(attrs):
            raise sdk_exc.ConflictException(
                message='IP address 203.0.113.42 already allocated',
                http_status=409)
        self.neutron.before_create = hidden
        exc = self.assertRaises(errors.Refused, pf.recover, self.conn,
                                '203.0.113.42', 'public')
        self.assertIn('cannot see', str(exc))
        self.assertEqual({}, self.neutron.ports)

    def test_bad_input(self):
        for args, text in ((('nonsense', 'public'), 'not an IP address'),
                           (('198.51.100.1', 'public'), 'outside every'),
                           (('203.0.113.5', 'nope'), 'not found')):
            exc = self.assertRaises(errors.NodeOpsError, pf.recover,
                                    self.conn, *args)
            self.assertIn(text, str(exc))
        self.assertRaises(errors.UsageError, pf.recover, self.conn,
                          '203.0.113.5', 'public', max_attempts=0)
        self.neutron.proxy.create_port.assert_not_called()

    def test_loop_keeps_the_hit_and_deletes_the_rest(self):
        self.neutron.allow_ip_address = False
        self.neutron.pick = self.picker(
            ['203.0.113.%d' % i for i in (7, 8, 9, 42, 50)])
        row = pf.recover(self.conn, '203.0.113.42', 'public',
                         max_attempts=10, name='w.ex', events=self.emit)
        self.assertEqual('loop', row['method'])
        self.assertEqual(4, row['attempts'])
        self.assertEqual(3, row['deleted'])
        self.assertEqual([row['id']], list(self.neutron.ports))
        self.assertEqual('w.ex', row['name'])
        self.assertIn(pf.TAG, row['tags'])
        # the loop only asks the address's subnet
        for call in self.neutron.proxy.create_port.call_args_list[1:]:
            self.assertEqual(1, len(call.kwargs['fixed_ips']))
            self.assertNotIn('ip_address', call.kwargs['fixed_ips'][0])

    def test_loop_is_bounded_and_cleans_up(self):
        self.neutron.allow_ip_address = False
        self.neutron.pick = self.picker(
            ['203.0.113.%d' % i for i in range(100, 200)])
        exc = self.assertRaises(errors.Incomplete, pf.recover,
                                self.conn, '203.0.113.42', 'public',
                                max_attempts=5)
        self.assertIn('5 attempts', str(exc))
        # one direct try (refused) + exactly max_attempts loop ports
        self.assertEqual(6, self.neutron.proxy.create_port.call_count)
        self.assertEqual(5, len(self.neutron.created))
        self.assertEqual({}, self.neutron.ports)
        self.assertEqual(sorted(self.neutron.created),
                         sorted(self.neutron.deleted))

    def test_keyboard_interrupt_deletes_every_created_port(self):
        self.neutron.allow_ip_address = False
        self.neutron.pick = self.picker(
            ['203.0.113.%d' % i for i in range(100, 200)])
        calls = []

        def interrupt(attrs):
            calls.append(attrs)
            if len(calls) == 4:      # direct try + 2 loop ports, then ^C
                raise KeyboardInterrupt()
        self.neutron.before_create = interrupt
        self.assertRaises(KeyboardInterrupt, pf.recover, self.conn,
                          '203.0.113.42', 'public', max_attempts=10)
        self.assertEqual(2, len(self.neutron.created))
        self.assertEqual({}, self.neutron.ports)

    def test_interrupt_after_neutron_created_but_before_answer(self):
        # neutron made the port, the answer never reached us: found by
        # the run's unique name and deleted.
        self.neutron.allow_ip_address = False
        self.neutron.pick = self.picker(
            ['203.0.113.%d' % i for i in range(100, 200)])

        def lost_answer(port):
            if len(self.neutron.created) == 3:
                raise KeyboardInterrupt()
        self.neutron.after_create = lost_answer
        unrelated = self.neutron.add_port(self.net, ['203.0.113.250'],
                                          name='nodeops-recover-other')
        self.assertRaises(KeyboardInterrupt, pf.recover, self.conn,
                          '203.0.113.42', 'public', max_attempts=10)
        self.assertEqual([unrelated.id], list(self.neutron.ports))

    def test_interrupt_after_the_hit_keeps_it_and_says_so(self):
        self.neutron.allow_ip_address = False
        self.neutron.pick = self.picker(['203.0.113.100', '203.0.113.42'])
        self.neutron.proxy.update_port.side_effect = KeyboardInterrupt()
        self.assertRaises(KeyboardInterrupt, pf.recover, self.conn,
                          '203.0.113.42', 'public', events=self.emit)
        [kept] = list(self.neutron.ports.values())
        self.assertEqual(['203.0.113.42'], pf.port_addresses(kept))
        self.assertTrue(any(kept.id in e and 'kept' in e
                            for e in self.events))

    def test_error_mid_loop_cleans_up(self):
        self.neutron.allow_ip_address = False
        self.neutron.pick = self.picker(['203.0.113.100', '203.0.113.101'])
        # the third pick raises StopIteration inside neutron: a crash
        self.assertRaises(Exception, pf.recover, self.conn, '203.0.113.42',
                          'public', max_attempts=10)
        self.assertEqual({}, self.neutron.ports)

    def test_undeletable_port_is_reported(self):
        self.neutron.allow_ip_address = False
        self.neutron.pick = self.picker(['203.0.113.100', '203.0.113.42'])
        stuck = []
        self.neutron.after_create = lambda p: (
            stuck.append(p.id) if not stuck else None)
        real_delete = self.neutron.delete_port

        def delete(port, ignore_missing=True, **kw):
            if port == stuck[0]:
                raise sdk_exc.HttpException(message='boom', http_status=500)
            return real_delete(port, ignore_missing)
        self.neutron.proxy.delete_port.side_effect = delete
        exc = self.assertRaises(errors.Incomplete, pf.recover,
                                self.conn, '203.0.113.42', 'public',
                                events=self.emit)
        self.assertIn(stuck[0], str(exc))
        self.assertTrue(any(stuck[0] in e for e in self.events))

    def test_unassignable_addresses_refused(self):
        net = self.neutron.add_network('pooled', [
            {'cidr': '192.0.2.0/24', 'gateway_ip': '192.0.2.1',
             'allocation_pools': [{'start': '192.0.2.10',
                                   'end': '192.0.2.20'}]}])
        for ip, text in (('192.0.2.1', 'gateway'), ('192.0.2.0', 'network'),
                         ('192.0.2.255', 'broadcast')):
            exc = self.assertRaises(errors.Refused, pf.recover,
                                    self.conn, ip, net.id)
            self.assertIn(text, str(exc))
        self.neutron.proxy.create_port.assert_not_called()
        # Outside the pools: an admin gets it directly ...
        row = pf.recover(self.conn, '192.0.2.50', net.id)
        self.assertEqual('direct', row['method'])
        # ... the loop never could: refused before looping.
        self.neutron.allow_ip_address = False
        exc = self.assertRaises(errors.Refused, pf.recover, self.conn,
                                '192.0.2.60', net.id)
        self.assertIn('allocation pools', str(exc))
        self.assertEqual([row['id']], list(self.neutron.ports))

    def test_ipv6_auto_address_uses_the_mac(self):
        net = self.neutron.add_network('v6', [
            {'cidr': '2001:db8:1::/64', 'ipv6_address_mode': 'slaac'}])
        addr = '2001:db8:1::f816:3eff:fefb:45fb'
        self.assertEqual('fa:16:3e:fb:45:fb',
                         pf.eui64_mac(pf.parse_address(addr)))
        seen = {}

        def record(attrs):
            seen.update(attrs)
            attrs['fixed_ips'] = [{'subnet_id': attrs['fixed_ips'][0][
                'subnet_id'], 'ip_address': addr}]
        self.neutron.before_create = record
        row = pf.recover(self.conn, addr, net.id)
        self.assertEqual('fa:16:3e:fb:45:fb', seen['mac_address'])
        self.assertEqual([addr], row['addresses'])

    def test_ipv6_auto_address_without_mac_rights_refused(self):
        net = self.neutron.add_network('v6', [
            {'cidr': '2001:db8:1::/64', 'ipv6_address_mode': 'slaac'}])
        self.neutron.allow_mac_address = False
        exc = self.assertRaises(errors.Refused, pf.recover, self.conn,
                                '2001:db8:1::f816:3eff:fefb:45fb', net.id)
        self.assertIn('derives from MAC', str(exc))
        self.assertEqual({}, self.neutron.ports)
        exc = self.assertRaises(errors.Refused, pf.recover, self.conn,
                                '2001:db8:1::1', net.id)
        self.assertIn('not an EUI-64', str(exc))


class TestCheck(Base):

    def listener(self):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(('127.0.0.1', 0))
        sock.listen(5)
        self.addCleanup(sock.close)
        return sock.getsockname()[1]

    def test_probe_open_against_a_real_listener(self):
        port = self.listener()
        result, detail, seconds = pf.probe('127.0.0.1', port, 2)
        self.assertEqual('open', result)
        self.assertLess(seconds, 2)

    def test_probe_refused_on_a_closed_port(self):
        port = self.listener()
        closed = socket.socket()
        closed.bind(('127.0.0.1', 0))
        free = closed.getsockname()[1]
        closed.close()
        self.assertNotEqual(port, free)
        self.assertEqual('refused', pf.probe('127.0.0.1', free, 2)[0])

    def test_probe_timeout_when_nobody_accepts(self):
        # A listener with a full backlog that never accepts: SYNs to it are
        # dropped, so connect times out (loopback only).
        sock = socket.socket()
        sock.bind(('127.0.0.1', 0))
        sock.listen(0)
        self.addCleanup(sock.close)
        addr = sock.getsockname()
        fillers = []
        try:
            for _ in range(8):
                s = socket.socket()
                s.setblocking(False)
                s.connect_ex(addr)
                fillers.append(s)
            time.sleep(0.1)
            start = time.monotonic()
            result, detail, _s = pf.probe('127.0.0.1', addr[1], 0.5)
            elapsed = time.monotonic() - start
        finally:
            for s in fillers:
                s.close()
        self.assertEqual('timeout', result)
        self.assertLess(elapsed, 2)

    def test_check_reports_every_address_in_parallel(self):
        port = self.float_port()
        seen = []
        lock = threading.Lock()

        def fake_probe(address, tcp_port, timeout):
            with lock:
                seen.append((address, tcp_port, timeout))
            return ('open' if '.' in address else 'unreachable',
                    'x', 0.01)
        rows = pf.check(self.conn, port.id, tcp_port=2222, timeout=1.5,
                        probe_fn=fake_probe)
        self.assertEqual(['203.0.113.10', '2001:db8::10'],
                         [r['address'] for r in rows])
        self.assertEqual(['open', 'unreachable'],
                         [r['result'] for r in rows])
        self.assertEqual([4, 6], [r['ip_version'] for r in rows])
        self.assertEqual({2222}, {s[1] for s in seen})

    def test_check_bad_input(self):
        port = self.float_port()
        self.assertRaises(errors.UsageError, pf.check, self.conn, port.id,
                          tcp_port=0)
        self.assertRaises(errors.UsageError, pf.check, self.conn, port.id,
                          timeout=0)
        self.assertRaises(errors.Refused, pf.check, self.conn, 'nope')


class TestTransientFaults(Base):
    """A 503, a reset or a timeout on the way: looks are made again; a
    change is made again only after a look says it did not go through."""

    def setUp(self):
        super(TestTransientFaults, self).setUp()
        self.a = self.nova.add_server('a')
        self.useFixture(fixtures.MockPatchObject(time, 'sleep'))

    @staticmethod
    def unavailable():
        return sdk_exc.HttpException('Service Unavailable',
                                     http_status=503)

    def fail_first(self, mock_fn, *excs):
        """Make MOCK_FN raise EXCS first, then behave as before;
        ``after_effect`` names an exception raised after the real call
        (the change took effect, the answer was lost)."""
        real = mock_fn.side_effect
        queue = list(excs)

        def effect(*args, **kwargs):
            if queue:
                exc = queue.pop(0)
                if getattr(exc, 'after_effect', False):
                    real(*args, **kwargs)
                raise exc
            return real(*args, **kwargs)
        mock_fn.side_effect = effect

    def test_looks_are_retried(self):
        port = self.float_port()
        self.fail_first(self.neutron.proxy.find_port, self.unavailable(),
                        ConnectionResetError())
        self.fail_first(self.nova.proxy.find_server, self.unavailable())
        row = pf.attach(self.conn, port.id, 'a', timeout=5, interval=0)
        self.assertEqual(self.a.id, row['server_id'])
        self.nova.proxy.create_server_interface.assert_called_once()

    def test_attach_refused_by_a_5xx_before_nova_is_made_again(self):
        port = self.float_port()
        self.fail_first(self.nova.proxy.create_server_interface,
                        self.unavailable(), ConnectionResetError())
        row = pf.attach(self.conn, port.id, 'a', timeout=5,
                        events=self.emit, interval=0)
        self.assertEqual(('ACTIVE', self.a.id),
                         (row['status'], row['server_id']))
        self.assertEqual(
            3, self.nova.proxy.create_server_interface.call_count)
        self.assertIn('attach of port %s: 503: Service Unavailable; looking '
                      'whether it went through' % port.id, self.events)

    def test_attach_whose_answer_was_lost_is_not_made_again(self):
        port = self.float_port()
        lost = ConnectionResetError('reset after the request')
        lost.after_effect = True
        self.fail_first(self.nova.proxy.create_server_interface, lost)
        row = pf.attach(self.conn, port.id, 'a', timeout=5, interval=0)
        self.assertEqual(self.a.id, row['server_id'])
        self.nova.proxy.create_server_interface.assert_called_once()

    def test_a_conflict_after_a_lost_answer_is_the_attach_under_way(self):
        # the first call went through slowly (the look saw nothing yet);
        # nova refuses the second one; the patient look then sees it done
        port = self.float_port()
        first = ConnectionResetError('timed out')
        self.fail_first(self.nova.proxy.create_server_interface, first,
                        sdk_exc.ConflictException('port in use'))
        real_find = self.neutron.proxy.get_port.side_effect
        looks = []

        def slow_get(p):
            looks.append(p)
            if len(looks) == 3:      # nova finishes the first attach now
                self.nova.plug(self.a, port)
            return real_find(p)
        self.neutron.proxy.get_port.side_effect = slow_get
        row = pf.attach(self.conn, port.id, 'a', timeout=5, interval=0)
        self.assertEqual(self.a.id, row['server_id'])
        self.assertEqual(
            2, self.nova.proxy.create_server_interface.call_count)

    def test_a_conflict_on_the_first_call_is_a_refusal(self):
        port = self.float_port()
        self.nova.refuse_attach = sdk_exc.ConflictException('port in use')
        exc = self.assertRaises(errors.Refused, pf.attach, self.conn,
                                port.id, 'a', timeout=1, interval=0)
        self.assertIn('nova refused to attach', str(exc))
        self.nova.proxy.create_server_interface.assert_called_once()

    def test_attach_that_keeps_failing_is_incomplete(self):
        port = self.float_port()
        self.nova.refuse_attach = self.unavailable()
        exc = self.assertRaises(errors.Incomplete, pf.attach, self.conn,
                                port.id, 'a', timeout=1, interval=0)
        self.assertIn('failed %d times' % pf.CALL_ATTEMPTS, str(exc))
        self.assertEqual(pf.CALL_ATTEMPTS,
                         self.nova.proxy.create_server_interface.call_count)
        self.assertEqual('', port.device_id)

    def _attached(self):
        port = self.float_port(created_at='2026-01-01T00:00:05Z')
        self.nova.plug(self.a, port)
        return port

    def test_detach_whose_answer_was_lost_is_not_made_again(self):
        port = self._attached()
        lost = ConnectionResetError('reset after the request')
        lost.after_effect = True
        self.fail_first(self.nova.proxy.delete_server_interface, lost)
        row = pf.detach(self.conn, port.id, timeout=5, interval=0)
        self.assertEqual(self.a.id, row['detached_from'])
        self.nova.proxy.delete_server_interface.assert_called_once()
        self.assertIn(port.id, self.neutron.ports)

    def test_detach_refused_by_a_5xx_is_made_again(self):
        port = self._attached()
        self.fail_first(self.nova.proxy.delete_server_interface,
                        self.unavailable())
        self.fail_first(self.nova.proxy.get, self.unavailable())
        row = pf.detach(self.conn, port.id, timeout=5, interval=0)
        self.assertEqual(self.a.id, row['detached_from'])
        self.assertEqual(
            2, self.nova.proxy.delete_server_interface.call_count)
        self.assertEqual('', port.device_id)


class TestChangePolicy(testtools.TestCase):
    """``change``'s policy, call by call: a look after every transient
    fault (the last one too), pauses of 1, 2, 4, 8 s, a refusal after a
    lost answer taken as done only when the patient look sees it done, and
    a fault of the look itself never taken for the call's."""

    def setUp(self):
        super(TestChangePolicy, self).setUp()
        self.sleep = self.useFixture(
            fixtures.MockPatchObject(time, 'sleep')).mock
        self.looks = []
        self.events = []

    def change(self, outcomes, looks=()):
        """``change`` over a call that raises or returns OUTCOMES in turn;
        the look answers LOOKS in turn (then False)."""
        outcomes, answers = list(outcomes), list(looks)

        def call():
            out = outcomes.pop(0)
            if isinstance(out, BaseException):
                raise out
            return out

        def took_effect(patient):
            self.looks.append(patient)
            answer = answers.pop(0) if answers else False
            if isinstance(answer, BaseException):
                raise answer
            return answer
        return pf_base.change(call, 'the change', took_effect,
                              self.events.append)

    def slept(self):
        return [c.args[0] for c in self.sleep.call_args_list]

    def test_a_call_that_keeps_failing(self):
        exc = self.assertRaises(
            errors.Incomplete, self.change,
            [ConnectionResetError('reset %d' % n) for n in range(5)])
        self.assertEqual('the change: failed 5 times, last: reset 4',
                         str(exc))
        self.assertEqual([False] * 5, self.looks)
        self.assertEqual([1.0, 2.0, 4.0, 8.0], self.slept())
        self.assertEqual(['the change: reset %d; looking whether it went '
                          'through' % n for n in range(5)], self.events)

    def test_the_last_look_may_find_it_done(self):
        self.assertIsNone(self.change(
            [ConnectionResetError('reset')] * 5, [False] * 4 + [True]))
        self.assertEqual([False] * 5, self.looks)
        self.assertEqual([1.0, 2.0, 4.0, 8.0], self.slept())

    def test_a_success_after_faults_is_its_answer(self):
        self.assertEqual('done', self.change(
            [ConnectionResetError(), TimeoutError(), 'done']))
        self.assertEqual([False, False], self.looks)
        self.assertEqual([1.0, 2.0], self.slept())

    def test_a_refusal_first_stands_without_a_look(self):
        refusal = sdk_exc.ConflictException('in use')
        self.assertIs(refusal, self.assertRaises(
            sdk_exc.ConflictException, self.change, [refusal]))
        self.assertEqual([], self.looks)
        self.assertEqual([], self.slept())

    def test_a_refusal_after_a_fault_is_done_when_the_look_says_so(self):
        self.assertIsNone(self.change(
            [ConnectionResetError(), sdk_exc.ConflictException('in use')],
            [False, True]))
        self.assertEqual([False, True], self.looks)

    def test_a_refusal_after_a_fault_stands_otherwise(self):
        self.assertRaises(sdk_exc.ConflictException, self.change,
                          [ConnectionResetError(),
                           sdk_exc.ConflictException('in use')])
        self.assertEqual([False, True], self.looks)
        self.assertEqual([1.0], self.slept())

    def test_a_fault_of_the_look_ends_the_change(self):
        lost = ConnectionResetError('look lost')
        self.assertIs(lost, self.assertRaises(
            ConnectionResetError, self.change,
            [ConnectionResetError('call lost'), 'done'], [lost]))
        self.assertEqual([], self.slept())
