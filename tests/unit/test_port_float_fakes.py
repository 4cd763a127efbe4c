"""In-memory neutron and nova for the port float unit tests.

Both sit behind ``mock.create_autospec`` of the real SDK proxies
(``openstack.network.v2._proxy.Proxy``, ``openstack.compute.v2._proxy.Proxy``)
so a call with a wrong signature fails; resources are real SDK objects.
"""

import ipaddress
import itertools
import uuid
from unittest import mock

from openstack.compute.v2 import _proxy as compute_proxy
from openstack.compute.v2 import server as _server
from openstack.compute.v2 import server_interface as _iface
from openstack import exceptions
from openstack.network.v2 import _proxy as network_proxy
from openstack.network.v2 import network as _network
from openstack.network.v2 import port as _port
from openstack.network.v2 import subnet as _subnet


def _http(cls, status, message):
    return cls(message=message, http_status=status)


class FakeNeutron(object):
    """Networks, subnets and ports; IPs handed out from ``pick``."""

    def __init__(self):
        self.proxy = mock.create_autospec(network_proxy.Proxy,
                                          instance=True)
        self.networks = {}
        self.subnets = {}
        self.ports = {}
        self.allow_ip_address = True      # create_port:fixed_ips:ip_address
        self.allow_mac_address = True
        self.pick = None                  # callable(subnet, used) -> ip
        self.before_create = None         # hook(attrs) run before a create
        self.after_create = None          # hook(port) run after a create
        self.fail_delete = set()          # port IDs whose delete fails
        self.fail_tags = False
        self.created = []
        self.deleted = []
        self._mac = itertools.count(1)
        p = self.proxy
        p.find_network.side_effect = self.find_network
        p.subnets.side_effect = self.list_subnets
        p.ports.side_effect = self.list_ports
        p.find_port.side_effect = self.find_port
        p.get_port.side_effect = self.get_port
        p.create_port.side_effect = self.create_port
        p.update_port.side_effect = self.update_port
        p.delete_port.side_effect = self.delete_port
        p.set_tags.side_effect = self.set_tags

    # -- set-up ---------------------------------------------------------------
    def add_network(self, name='public', subnets=(), **attrs):
        net = _network.Network(id=str(uuid.uuid4()), name=name, **attrs)
        self.networks[net.id] = net
        for spec in subnets:
            spec = dict(spec)
            cidr = spec.pop('cidr')
            sub = _subnet.Subnet(
                id=str(uuid.uuid4()), network_id=net.id, cidr=cidr,
                ip_version=ipaddress.ip_network(cidr).version,
                name=spec.pop('name', cidr), **spec)
            self.subnets[sub.id] = sub
        return net

    def add_port(self, network, ips=(), tags=(), created_at=None, **attrs):
        body = {'id': str(uuid.uuid4()), 'network_id': network.id,
                'fixed_ips': [{'subnet_id': self._subnet_of(network, ip).id,
                               'ip_address': ip} for ip in ips],
                'tags': list(tags), 'device_id': '', 'device_owner': '',
                'status': 'DOWN', 'name': '', 'description': '',
                'mac_address': 'fa:16:3e:00:00:%02x' % next(self._mac),
                'created_at': created_at or '2026-01-01T00:00:00Z'}
        body.update(attrs)
        port = _port.Port(**body)
        self.ports[port.id] = port
        return port

    def _subnet_of(self, network, ip):
        for sub in self.subnets.values():
            if (sub.network_id == network.id
                    and ipaddress.ip_address(ip) in
                    ipaddress.ip_network(sub.cidr)):
                return sub
        raise AssertionError('no subnet for %s' % ip)

    def used(self):
        return {f['ip_address'] for p in self.ports.values()
                for f in p.fixed_ips}

    # -- proxy behaviour -----------------------------------------------------
    def find_network(self, name_or_id, ignore_missing=True, **query):
        for net in self.networks.values():
            if name_or_id in (net.id, net.name):
                return net
        if ignore_missing:
            return None
        raise exceptions.ResourceNotFound('no network %s' % name_or_id)

    def list_subnets(self, **query):
        return [s for s in self.subnets.values()
                if s.network_id == query.get('network_id', s.network_id)]

    def list_ports(self, **query):
        result = []
        for port in self.ports.values():
            if 'network_id' in query and \
                    port.network_id != query['network_id']:
                continue
            if 'name' in query and port.name != query['name']:
                continue
            if 'tags' in query and query['tags'] not in (port.tags or []):
                continue
            if 'fixed_ips' in query:
                want = {q.split('=', 1)[1] for q in query['fixed_ips']}
                if not want & {f['ip_address'] for f in port.fixed_ips}:
                    continue
            result.append(port)
        return iter(result)

    def find_port(self, name_or_id, ignore_missing=True, **query):
        hits = [p for p in self.ports.values()
                if name_or_id in (p.id, p.name)]
        if len(hits) > 1:
            raise exceptions.DuplicateResource('dup %s' % name_or_id)
        if hits:
            return hits[0]
        if ignore_missing:
            return None
        raise exceptions.ResourceNotFound('no port %s' % name_or_id)

    def get_port(self, port):
        pid = getattr(port, 'id', port)
        if pid not in self.ports:
            raise exceptions.ResourceNotFound('no port %s' % pid)
        return self.ports[pid]

    def _allocate(self, subnet):
        used = self.used()
        if self.pick is not None:
            return self.pick(subnet, used)
        for ip in ipaddress.ip_network(subnet.cidr).hosts():
            if str(ip) not in used:
                return str(ip)
        raise _http(exceptions.ConflictException, 409, 'subnet full')

    def create_port(self, **attrs):
        if self.before_create is not None:
            self.before_create(attrs)
        net = self.networks[attrs['network_id']]
        fixed = []
        specs = attrs.get('fixed_ips') or [
            {'subnet_id': s.id} for s in self.list_subnets(network_id=net.id)]
        for spec in specs:
            if 'ip_address' in spec:
                if not self.allow_ip_address:
                    raise _http(exceptions.ForbiddenException, 403,
                                'create_port:fixed_ips:ip_address')
                if spec['ip_address'] in self.used():
                    raise _http(exceptions.ConflictException, 409,
                                'IP address %s already allocated'
                                % spec['ip_address'])
                fixed.append(dict(spec))
            else:
                sub = self.subnets[spec['subnet_id']]
                fixed.append({'subnet_id': sub.id,
                              'ip_address': self._allocate(sub)})
        if 'mac_address' in attrs and not self.allow_mac_address:
            raise _http(exceptions.ForbiddenException, 403,
                        'create_port:mac_address')
        body = {k: v for k, v in attrs.items() if k != 'fixed_ips'}
        port = self.add_port(net, **body)
        port.fixed_ips = fixed
        self.created.append(port.id)
        if self.after_create is not None:
            self.after_create(port)
        return port

    def update_port(self, port, **attrs):
        port = self.get_port(port)
        for key, value in attrs.items():
            setattr(port, key, value)
        return port

    def set_tags(self, port, tags):
        if self.fail_tags:
            raise _http(exceptions.ForbiddenException, 403, 'no tags')
        port = self.get_port(port)
        port.tags = list(tags)
        return port

    def delete_port(self, port, ignore_missing=True, **kw):
        pid = getattr(port, 'id', port)
        if pid in self.fail_delete:
            raise _http(exceptions.HttpException, 500, 'delete failed')
        if pid in self.ports:
            del self.ports[pid]
            self.deleted.append(pid)
        elif not ignore_missing:
            raise exceptions.ResourceNotFound('no port %s' % pid)


class _Response(object):
    def __init__(self, status_code, body):
        self.status_code = status_code
        self._body = body

    def json(self):
        return self._body


class FakeNova(object):
    """Servers whose interfaces bind ports of a FakeNeutron."""

    def __init__(self, neutron):
        self.neutron = neutron
        self.proxy = mock.create_autospec(compute_proxy.Proxy, instance=True)
        self.servers = {}
        self.actions = {}          # server id -> list of action dicts
        self.refuse_attach = None  # exception to raise on attach
        self.port_goes_active = True
        p = self.proxy
        p.find_server.side_effect = self.find_server
        p.get_server.side_effect = self.get_server
        p.create_server_interface.side_effect = self.attach
        p.delete_server_interface.side_effect = self.detach
        p.server_interfaces.side_effect = self.interfaces
        p.get.side_effect = self.get

    def add_server(self, name='srv', created='2026-01-01T00:00:10.500000',
                   built='2026-01-01T00:00:20.000000'):
        server = _server.Server(id=str(uuid.uuid4()), name=name,
                                status='ACTIVE', addresses={})
        self.servers[server.id] = server
        self.actions[server.id] = [{'action': 'create',
                                    'start_time': created,
                                    'updated_at': built}]
        return server

    def find_server(self, name_or_id, ignore_missing=True, **kw):
        for s in self.servers.values():
            if name_or_id in (s.id, s.name):
                return s
        if ignore_missing:
            return None
        raise exceptions.ResourceNotFound('no server')

    def get_server(self, server):
        return self.servers[getattr(server, 'id', server)]

    def plug(self, server, port, status='ACTIVE'):
        """Bind PORT to SERVER the way nova + neutron leave it."""
        port.device_id = server.id
        port.device_owner = 'compute:nova'
        port.binding_host_id = 'c01'
        port.status = status
        server.addresses = dict(server.addresses or {})
        server.addresses.setdefault('public', [])
        for f in port.fixed_ips:
            server.addresses['public'].append(
                {'addr': f['ip_address'],
                 'version': ipaddress.ip_address(f['ip_address']).version})

    def attach(self, server, **attrs):
        if self.refuse_attach is not None:
            raise self.refuse_attach
        server = self.get_server(server)
        port = self.neutron.get_port(attrs['port_id'])
        self.plug(server, port,
                  'ACTIVE' if self.port_goes_active else 'DOWN')
        return _iface.ServerInterface(port_id=port.id, server_id=server.id)

    def detach(self, server_interface, server=None, ignore_missing=True):
        server = self.get_server(server)
        port = self.neutron.get_port(server_interface)
        port.device_id = ''
        port.device_owner = ''
        port.binding_host_id = None
        port.status = 'DOWN'
        addrs = {f['ip_address'] for f in port.fixed_ips}
        server.addresses = {
            net: [a for a in entries if a['addr'] not in addrs]
            for net, entries in (server.addresses or {}).items()}

    def interfaces(self, server, **query):
        sid = getattr(server, 'id', server)
        return iter([_iface.ServerInterface(port_id=p.id, server_id=sid)
                     for p in self.neutron.ports.values()
                     if p.device_id == sid])

    def get(self, url, microversion=None, **kw):
        sid = url.split('/')[2]
        if sid not in self.actions:
            return _Response(404, {})
        return _Response(200, {'instanceActions': self.actions[sid]})


class FakeConn(object):
    def __init__(self):
        self.neutron = FakeNeutron()
        self.nova = FakeNova(self.neutron)
        self.network = self.neutron.proxy
        self.compute = self.nova.proxy
