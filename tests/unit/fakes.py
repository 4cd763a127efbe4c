"""Shared fakes: real openstacksdk resources and a spec'd compute proxy.

``server()``, ``migration()``, ``service()``, ``hypervisor()`` build real SDK
resource objects (``openstack.compute.v2.*``) from nova's wire names, the
way OSC's tests/unit/compute/v2/fakes.py does.

``FakeNova`` is a tiny in-memory nova behind ``mock.create_autospec`` of
``openstack.compute.v2._proxy.Proxy``: only the proxy methods it wires up
behave; any other call is recorded by the mock (and a call with a wrong
signature fails, thanks to the spec).  Migrations advance one step every
time the migrations of a host are listed (one "tick" per poll), and a
per-server script says how each attempt ends:

``'ok'``      the move completes;
``'fail'``    the migration errors and the server stays where it was
              (ACTIVE on the same host, as nova does after a failed live
              migration);
``'hang'``    the migration stays ``running`` until aborted/forced;
``'refuse'``  the API call raises 409;
``'lie'``     the record says completed but the server stays put;
``'slow-host'`` the record says completed one poll before the server's
              host changes (what a real listing can show);
``'transient-accepted'`` the API call raises 503 *after* nova accepted it;
``'transient-lost'``     the API call raises 503 and nothing happened.
"""

import itertools
import json
import uuid
import warnings
from unittest import mock

from openstack import exceptions
from openstack.compute.v2 import _proxy
from openstack.compute.v2 import aggregate as _aggregate
from openstack.compute.v2 import hypervisor as _hypervisor
from openstack.compute.v2 import migration as _migration
from openstack.compute.v2 import server as _server
from openstack.compute.v2 import service as _service


def server(**attrs):
    body = {
        'id': attrs.pop('id', None) or str(uuid.uuid4()),
        'name': attrs.pop('name', 'srv'),
        'status': attrs.pop('status', 'ACTIVE'),
        'tenant_id': attrs.pop('project_id', 'p1'),
        'OS-EXT-SRV-ATTR:host': attrs.pop('host', 'c01'),
        'OS-EXT-STS:task_state': attrs.pop('task_state', None),
        'OS-EXT-STS:power_state': attrs.pop('power_state', 1),
        'metadata': attrs.pop('metadata', {}),
        'image': attrs.pop('image', {'id': 'img'}),
    }
    body.update(attrs)
    return _server.Server(**body)


def migration(**attrs):
    body = {
        'id': attrs.pop('id'),
        'instance_uuid': attrs.pop('server_id'),
        'status': attrs.pop('status', 'accepted'),
        'migration_type': attrs.pop('migration_type', 'live-migration'),
        'source_compute': attrs.pop('source', 'c01'),
        'dest_compute': attrs.pop('dest', None),
    }
    body.update(attrs)
    return _migration.Migration(**body)


def service(host='c01', status='enabled', state='up', reason=None,
            forced_down=False, updated_at='2026-01-01T00:00:00.000000'):
    return _service.Service(
        id=str(uuid.uuid4()), host=host, binary='nova-compute',
        status=status, state=state, disabled_reason=reason,
        forced_down=forced_down, updated_at=updated_at)


def hypervisor(name='c01', host=None, state='up', status='enabled'):
    return _hypervisor.Hypervisor(
        id=str(uuid.uuid4()), hypervisor_hostname=name, state=state,
        status=status, service={'host': host or name, 'id': 'svc'})


def http_error(status, message='boom'):
    if status == 404:
        exc = exceptions.NotFoundException(message)
    elif status == 409:
        exc = exceptions.ConflictException(message)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            exc = exceptions.HttpException(message, http_status=status)
    exc.status_code = status
    return exc


GIB = 1024 ** 3
LIVE_STEPS = ('queued', 'preparing', 'running')
COLD_STEPS = ('pre-migrating', 'migrating', 'post-migrating')


class FakeNova(object):
    """In-memory nova; ``self.compute`` is the spec'd proxy mock.

    The executor calls it from its worker threads: a loop over
    ``self.migrations`` copies it first (an issue in another thread may add
    a record meanwhile; iterating the dict itself raised 'dictionary
    changed size during iteration' inside an issue, which the drain took
    as a refusal)."""

    def __init__(self, hosts=('c01', 'c02', 'c03'), max_version='2.95',
                 default_dest='c02'):
        self.services = {h: service(h) for h in hosts}
        self.servers = {}
        self.migrations = {}
        self.scripts = {}
        # polls for which a confirmed resize's server still reads
        # VERIFY_RESIZE: nova's compute saves the migration 'confirmed'
        # before the instance
        self.confirm_lag = 0
        # nova's max_concurrent_live_migrations per source (None: no
        # limit): a live migration past it stays 'queued'.
        self.live_slots = None
        self.default_dest = default_dest
        self.max_version = max_version
        self._ids = itertools.count(1)
        self.fail_lists = 0
        self.in_flight_max = 0
        self.compute = mock.create_autospec(_proxy.Proxy, instance=True)
        c = self.compute
        c.default_microversion = None
        c.get_endpoint_data.side_effect = self._endpoint
        c.servers.side_effect = self._list_servers
        c.migrations.side_effect = self._list_migrations
        c.services.side_effect = self._list_services
        c.get_server.side_effect = self._get_server
        c.live_migrate_server.side_effect = self._live_migrate
        c.migrate_server.side_effect = self._cold_migrate
        c.confirm_server_resize.side_effect = self._confirm
        c.set_server_metadata.side_effect = self._set_metadata
        c.delete_server_metadata.side_effect = self._delete_metadata
        c.disable_service.side_effect = self._disable
        c.enable_service.side_effect = self._enable
        c.abort_server_migration.side_effect = self._abort
        c.force_complete_server_migration.side_effect = self._force
        c.get_server_migration.side_effect = self._server_migration
        c.resume_server.side_effect = self._resume
        c.stop_server.side_effect = self._stop
        c.start_server.side_effect = self._start_server
        c.suspend_server.side_effect = self._suspend
        c.hypervisors.side_effect = lambda **kw: iter(
            hypervisor(h) for h in self.services)
        # Host aggregates (maintain's campaign record): name -> Aggregate.
        self.aggregates = {}
        c.aggregates.side_effect = lambda **kw: iter(
            list(self.aggregates.values()))
        c.create_aggregate.side_effect = self._create_aggregate
        c.set_aggregate_metadata.side_effect = self._aggregate_metadata
        c.delete_aggregate.side_effect = self._delete_aggregate
        # (also the host leases' store, ops/lease.py)
        c.get_aggregate.side_effect = self._get_aggregate

    # -- building
    def add(self, name, status='ACTIVE', host='c01', script=None, **kw):
        srv = server(name=name, status=status, host=host, **kw)
        self.servers[srv.id] = srv
        if script:
            self.scripts[srv.id] = list(script)
        return srv

    def add_migration(self, server_id, **kw):
        m = migration(id=next(self._ids), server_id=server_id, **kw)
        self.migrations[m.id] = m
        return m

    def on(self, host):
        return [s for s in self.servers.values() if s.compute_host == host]

    # -- proxy behaviour
    def _endpoint(self):
        return mock.Mock(min_microversion='2.1',
                         max_microversion=self.max_version)

    def _list_services(self, host=None, binary=None, **kw):
        return iter([s for s in self.services.values()
                     if host in (None, s.host)])

    def _list_servers(self, details=True, all_projects=False,
                      compute_host=None, **kw):
        # openstacksdk filters ``host=`` client-side against Server.host
        # (always empty in a listing): it would find nothing on a real cloud.
        assert 'host' not in kw, 'use compute_host= to list servers by host'
        host = compute_host
        if self.fail_lists:
            self.fail_lists -= 1
            raise http_error(503, 'service unavailable')
        found = [s for s in self.servers.values()
                 if host is None or s.compute_host == host]
        return iter([_server.Server(**s.to_dict(computed=False))
                     for s in found])

    def _list_migrations(self, host=None, **kw):
        if self.fail_lists:
            self.fail_lists -= 1
            raise http_error(503, 'service unavailable')
        self.tick()  # one step of every migration per poll
        found = [m for m in list(self.migrations.values())
                 if host is None or host in (m.source_compute,
                                             m.dest_compute)]
        return iter([_migration.Migration(**m.to_dict(computed=False))
                     for m in found])

    def _get_server(self, server_id):
        srv = self.servers.get(getattr(server_id, 'id', server_id))
        if srv is None:
            raise http_error(404, 'no server')
        return _server.Server(**srv.to_dict(computed=False))

    def _next(self, server_id):
        script = self.scripts.get(server_id)
        if script:
            return script.pop(0)
        return 'ok'

    def _start(self, server_id, kind, host):
        outcome = self._next(server_id)
        if outcome == 'refuse':
            raise http_error(409, 'Cannot migrate: conflict')
        if outcome == 'transient-lost':
            raise http_error(503, 'upstream reset')
        srv = self.servers[server_id]
        dest = host or self._schedule(srv.compute_host)
        if dest is None:
            outcome = 'fail'  # NoValidHost: the record ends in error
        m = self.add_migration(server_id, status=(
            'accepted' if kind == 'live-migration' else 'pre-migrating'),
            migration_type=kind, source=srv.compute_host, dest=dest)
        m._outcome = outcome
        m._step = 0
        srv.task_state = ('migrating' if kind == 'live-migration'
                          else 'resize_prep')
        active = sum(1 for x in list(self.migrations.values())
                     if x.status not in ('completed', 'error', 'cancelled',
                                         'confirmed', 'finished', 'failed'))
        self.in_flight_max = max(self.in_flight_max, active)
        if outcome == 'transient-accepted':
            m._outcome = 'ok'
            raise http_error(503, 'gateway timeout after accept')

    def _schedule(self, source):
        """The scheduler: an enabled host other than the source."""
        enabled = [h for h, s in sorted(self.services.items())
                   if s.status == 'enabled' and h != source]
        if self.default_dest in enabled:
            return self.default_dest
        return enabled[0] if enabled else None

    def _live_migrate(self, server, host=None, force=False,
                      block_migration=None, disk_over_commit=None):
        self._start(getattr(server, 'id', server), 'live-migration', host)

    def _cold_migrate(self, server, host=None):
        self._start(getattr(server, 'id', server), 'migration', host)

    def tick(self):
        for m in list(self.migrations.values()):
            if getattr(m, '_settle', 0):
                m._settle -= 1
                if not m._settle:
                    self.servers[m.server_id].status = 'SHUTOFF'
            outcome = getattr(m, '_outcome', None)
            if outcome is None:
                continue
            srv = self.servers.get(m.server_id)
            steps = (LIVE_STEPS if m.migration_type == 'live-migration'
                     else COLD_STEPS)
            if m._step < len(steps):
                if (steps[m._step] == 'preparing' and self.live_slots
                        and self._live_busy(m) >= self.live_slots):
                    continue   # waits 'queued' for a slot
                m.status = steps[m._step]
                m._step += 1
                continue
            if outcome == 'hang':
                continue
            m._left = getattr(m, '_left', GIB)   # bytes still to copy
            if outcome.startswith('slow:'):   # runs N more polls
                m._left = max(0, m._left - GIB // 32)
                left = int(outcome[5:]) - 1
                m._outcome = 'slow:%d' % left if left > 0 else 'ok'
                continue
            if outcome == 'slow-host':
                m.status = 'completed'
                m._outcome = 'move-host'
                continue
            if outcome == 'move-host':
                srv.compute_host = m.dest_compute
                srv.task_state = None
                m._outcome = None
                continue
            if outcome == 'fail':
                m.status = 'error'
                srv.task_state = None
            elif outcome == 'aborted':
                m.status = 'cancelled'
                srv.task_state = None
            elif outcome == 'lie':
                m.status = 'completed'
                srv.task_state = None
            elif m.migration_type == 'live-migration':
                m.status = 'completed'
                srv.compute_host = m.dest_compute
                srv.task_state = None
            else:
                m.status = 'finished'
                srv.compute_host = m.dest_compute
                srv.status = 'VERIFY_RESIZE'
                srv.task_state = None
            m._outcome = None

    def _server_migration(self, migration_id, server, ignore_missing=True):
        m = self.migrations.get(migration_id)
        if m is None or m.status != 'running':
            return None   # nova: 404 for one not in progress
        return mock.Mock(memory_remaining_bytes=getattr(m, '_left', GIB),
                         disk_remaining_bytes=0)

    def _live_busy(self, m):
        return sum(1 for x in list(self.migrations.values())
                   if x is not m and x.migration_type == 'live-migration'
                   and x.source_compute == m.source_compute
                   and x.status in ('preparing', 'running'))

    def _confirm(self, server):
        srv = self.servers[getattr(server, 'id', server)]
        if srv.status != 'VERIFY_RESIZE':
            raise http_error(409, 'not in VERIFY_RESIZE')
        for m in list(self.migrations.values()):
            if m.server_id == srv.id and m.status == 'finished':
                m.status = 'confirmed'
                m._settle = self.confirm_lag
        if not self.confirm_lag:
            srv.status = 'SHUTOFF'

    def _set_metadata(self, server, **md):
        srv = self.servers[getattr(server, 'id', server)]
        srv.metadata = dict(srv.metadata or {}, **md)

    def _delete_metadata(self, server, keys=None):
        srv = self.servers[getattr(server, 'id', server)]
        srv.metadata = {k: v for k, v in (srv.metadata or {}).items()
                        if k not in (keys or ())}

    def _disable(self, service, host=None, binary=None,
                 disabled_reason=None):
        if isinstance(service, str):  # an ID (2.53+): the SDK's fresh object
            [svc] = [x for x in self.services.values() if x.id == service]
        else:
            svc = self.services[service.host]
        if (not isinstance(service, str) and service.status == 'disabled'
                and self.max_version >= '2.53'):
            # openstacksdk sends only changed fields; nova wants a status
            raise http_error(400, 'No updates were requested. Fields '
                             "'status' or 'forced_down' should be specified.")
        svc.status = 'disabled'
        svc.disabled_reason = disabled_reason
        return svc

    def _enable(self, service, host=None, binary=None):
        svc = self.services[service.host]
        svc.status = 'enabled'
        svc.disabled_reason = None
        return svc

    def _create_aggregate(self, **attrs):
        if attrs['name'] in self.aggregates:
            raise http_error(409, 'aggregate exists')
        agg = _aggregate.Aggregate(id=next(self._ids), hosts=[],
                                   metadata={}, **attrs)
        self.aggregates[agg.name] = agg
        return agg

    def _aggregate_metadata(self, aggregate, metadata=None, **kw):
        agg = self.aggregates[aggregate.name]
        md = dict(agg.metadata or {})
        for key, value in (metadata or {}).items():
            if value is None:
                md.pop(key, None)
            else:
                md[key] = value
        agg.metadata = md
        return agg

    def _delete_aggregate(self, aggregate, ignore_missing=True):
        self.aggregates.pop(aggregate.name, None)

    def _get_aggregate(self, aggregate):
        wanted = getattr(aggregate, 'id', aggregate)
        for agg in self.aggregates.values():
            if agg.id == wanted:
                return agg
        raise exceptions.NotFoundException('no aggregate %s' % wanted)

    def _abort(self, migration_id, server, ignore_missing=True):
        m = self.migrations[migration_id]
        m._outcome = 'aborted'
        m._step = 99

    def _force(self, migration_id, server):
        m = self.migrations[migration_id]
        m._outcome = 'ok'
        m._step = 99

    def _stop(self, server):
        srv = self.servers[getattr(server, 'id', server)]
        srv.status = 'SHUTOFF'
        self.stopped = getattr(self, 'stopped', []) + [srv.id]

    def _start_server(self, server):
        srv = self.servers[getattr(server, 'id', server)]
        if srv.status != 'SHUTOFF':
            raise http_error(409, 'not SHUTOFF')
        srv.status = 'ACTIVE'
        self.started = getattr(self, 'started', []) + [srv.id]

    def _resume(self, server):
        srv = self.servers[getattr(server, 'id', server)]
        srv.status = 'ACTIVE'

    def _suspend(self, server):
        srv = self.servers[getattr(server, 'id', server)]
        srv.status = 'SUSPENDED'


class _Response(object):
    """A 200 answer (what ``Client`` reads: status, content, JSON)."""

    status_code = 200

    def __init__(self, body):
        self._body = body
        self.content = json.dumps(body).encode()

    def json(self):
        return self._body


class FakeCloud(object):
    """A Connection-shaped fake for the drain's pre-flight: ``compute``
    (a ``FakeNova``'s proxy), ``network`` ports, placement GETs (through
    ``placement.Client``: ``placement.request``, answered by
    ``placement_get``, which a test may replace, with the query in the
    URL; ``gets`` lists the URLs).

    ``size``: every provider's inventory, {rc: total}; ``used``: {host:
    {rc: used}}; ``ports``: SDK Port objects; ``groups``: ServerGroups."""

    def __init__(self, nova, size=None, used=None, ports=(), groups=(),
                 trait_disabled=(), zones=None):
        from openstack.network.v2 import _proxy as net_proxy
        self.nova = nova
        self.compute = nova.compute
        self.size = size or {'VCPU': 16, 'MEMORY_MB': 32768,
                             'DISK_GB': 500}
        self.used = used or {}
        self.trait_disabled = set(trait_disabled)
        self.zones = zones or {}
        self.gets = []
        self.held = {}  # server id -> resources it holds (placement)
        # host -> {consumer: resources}: other allocations on its provider
        # (migrations, orphans), for the post-drain audit.
        self.extra = {}
        self.hyp_ids = {h: 'rp-%s' % h for h in nova.services}
        self.compute.hypervisors.side_effect = lambda **kw: iter(
            _hypervisor.Hypervisor(
                id=self.hyp_ids[h], hypervisor_hostname=h, state='up',
                status='enabled', service={'host': h, 'id': 'svc'})
            for h in nova.services)
        self.compute.server_groups.side_effect = lambda **kw: iter(groups)
        self.compute.aggregates.side_effect = lambda **kw: iter([
            mock.Mock(availability_zone=z, hosts=hs, metadata={})
            for z, hs in self.zones.items()] + list(
                nova.aggregates.values()))
        self.network = mock.create_autospec(net_proxy.Proxy, instance=True)
        self.network.ports.side_effect = lambda **kw: iter(
            p for p in ports
            if p.binding_host_id == kw.get('binding_host_id'))
        self.placement = mock.Mock(spec=['request'])
        self.placement.request.side_effect = self._request
        self.placement_get = self._get
        self.config = mock.Mock(auth={'username': 'op'})
        self.session = mock.Mock(timeout=None)

    def _request(self, url, method, microversion=None, params=None, **kw):
        assert method == 'GET', method
        if params:
            url += '?' + '&'.join('%s=%s' % kv for kv in params.items())
        return self.placement_get(url, microversion=microversion)

    def _get(self, url, **kw):
        self.gets.append(url)
        host_of = {v: k for k, v in self.hyp_ids.items()}
        if url.startswith('/resource_providers?name='):
            name = url.split('=', 1)[1]
            return _Response({'resource_providers': [
                {'uuid': u, 'name': h} for h, u in self.hyp_ids.items()
                if h == name]})
        if url.startswith('/resource_providers?in_tree='):
            root = url.split('=', 1)[1]
            return _Response({'resource_providers': [
                {'uuid': root, 'name': host_of.get(root)}]})
        if url.startswith('/resource_providers?'):
            return _Response({'resource_providers': [
                {'uuid': u, 'name': h} for h, u in self.hyp_ids.items()
                if h not in self.trait_disabled]})
        uuid_, what = url.split('/')[2:4]
        host = host_of[uuid_]
        if what == 'allocations':
            found = {k: {'resources': v} for k, v in self.held.items()
                     if self.nova.servers.get(k) is not None and
                     self.nova.servers[k].compute_host == host}
            found.update({k: {'resources': v} for k, v in
                          self.extra.get(host, {}).items()})
            return _Response({'allocations': found})
        if what == 'inventories':
            return _Response({'inventories': {
                rc: {'total': n, 'reserved': 0, 'allocation_ratio': 1.0,
                     'max_unit': n} for rc, n in self.size.items()}})
        return _Response({'usages': dict(self.used.get(host, {}))})
