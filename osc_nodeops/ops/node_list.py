"""``compute node list``: one row per compute host.

``run(conn, request)`` returns ``NodeRow`` objects: the nova-compute
service (OSC's ``compute service list`` fields) and the lease an
osc-nodeops run holds on the host (``ops/lease.py``: owner, since,
expiry).  That is two calls whatever the size of the cloud: the services
and the leases aggregate (plus the aggregates once more with
``--aggregate``).

With ``long``, the running instances and the migrations in flight from
and to each host are counted too:

* for at most ``PER_HOST_MAX`` hosts (``--host c01``, a small aggregate),
  per host: its servers (``compute_host`` filter, all projects) and its
  migration records (``host`` filter), as ``compute node show`` reads
  them; nothing of the other hosts is fetched;
* for more hosts, one listing of the servers of every project (nova pages
  it), and the migration records of only the hosts where a server is
  caught in a move (status or task state), not every record of the cloud.
"""

import collections
import dataclasses

from osc_nodeops import errors
from osc_nodeops.ops import lease
from osc_nodeops.ops.cloud import calls
from osc_nodeops.ops.cloud import nova

COLUMNS = ('Host', 'Zone', 'Status', 'State', 'Updated At',
           'Disabled Reason', 'Lease Owner')
LONG_COLUMNS = ('Host', 'Zone', 'Status', 'State', 'Updated At',
                'Disabled Reason', 'Forced Down', 'Lease Owner',
                'Lease Since', 'Lease Expires', 'Instances',
                'Running Instances', 'Migrations Out', 'Migrations In')

#: Up to this many hosts, ``long`` asks nova host by host; beyond, one
#: listing of every server is fewer requests.
PER_HOST_MAX = 10

#: Server states that say a migration of it is under way (or awaits its
#: confirmation): where the migration records are worth reading.
MOVING_STATUS = ('MIGRATING', 'RESIZE', 'VERIFY_RESIZE', 'REVERT_RESIZE')


@dataclasses.dataclass(frozen=True)
class Request(object):
    """The argparse dests of ``compute node list``."""

    hosts: tuple[str, ...] = ()
    aggregate: str | None = None
    zone: str | None = None
    status: str | None = None   # enabled | disabled
    state: str | None = None    # up | down
    leased: bool = False
    long: bool = False

    def validate(self):
        """``UsageError`` before any cloud call."""
        for host in self.hosts:
            if not host.strip():
                raise errors.UsageError('--host: the host name is empty')
        if len(set(self.hosts)) != len(self.hosts):
            raise errors.UsageError('--host: a host is named twice')
        if self.status not in (None, 'enabled', 'disabled'):
            raise errors.UsageError('--status: enabled or disabled')
        if self.state not in (None, 'up', 'down'):
            raise errors.UsageError('--state: up or down')


@dataclasses.dataclass
class NodeRow(object):
    host: str
    zone: str | None = None
    status: str | None = None
    state: str | None = None
    updated_at: str | None = None
    disabled_reason: str | None = None
    forced_down: bool = False
    lease_owner: str | None = None
    lease_since: str | None = None
    lease_expires: str | None = None
    instances: int | None = None
    running: int | None = None
    migrations_out: int | None = None
    migrations_in: int | None = None

    def row(self, long=False):
        if not long:
            return (self.host, self.zone, self.status, self.state,
                    self.updated_at, self.disabled_reason, self.lease_owner)
        return (self.host, self.zone, self.status, self.state,
                self.updated_at, self.disabled_reason, self.forced_down,
                self.lease_owner, self.lease_since, self.lease_expires,
                self.instances,
                self.running, self.migrations_out, self.migrations_in)


def in_flight(migration):
    """A migration still under way (``finished`` cold migrations await
    their confirmation: still in flight, as in ``compute node show``)."""
    return migration.status not in nova.MIGRATION_FINAL


def aggregate_hosts(compute, name):
    """Hosts of the aggregate named (or with the ID) ``name``."""
    found = [a for a in calls.call_with_retry(
        lambda: list(compute.aggregates()))
        if name in (a.name, str(a.id), getattr(a, 'uuid', None))]
    if not found:
        raise errors.NotFound('no aggregate %r' % name)
    if len(found) > 1:
        raise errors.UsageError('%d aggregates are named %r: give the ID'
                                % (len(found), name))
    return list(found[0].hosts or ())


def compute_services(compute, aggregate=None, zone=None, hosts=()):
    """The nova-compute services, sorted by host, filtered by aggregate,
    availability zone and/or host names (``NotFound`` when none is left,
    or a named host has no nova-compute).  One host is asked of nova by
    name."""
    query = {'binary': nova.COMPUTE_BINARY}
    if len(hosts) == 1:
        query['host'] = hosts[0]
    services = [s for s in calls.call_with_retry(
        lambda: list(compute.services(**query)))
        if s.binary == nova.COMPUTE_BINARY]
    if hosts:
        known = {s.host for s in services}
        missing = [h for h in hosts if h not in known]
        if missing:
            raise errors.NotFound('no nova-compute service on host %s'
                                  % ', '.join(missing))
        services = [s for s in services if s.host in hosts]
    if aggregate is not None:
        members = set(aggregate_hosts(compute, aggregate))
        services = [s for s in services if s.host in members]
        if not services:
            raise errors.NotFound('aggregate %r holds no compute host%s'
                                  % (aggregate, ' named' if hosts else ''))
    if zone is not None:
        services = [s for s in services if s.availability_zone == zone]
        if not services:
            raise errors.NotFound('no compute host%s in availability zone '
                                  '%r' % (' named' if hosts else '', zone))
    return sorted(services, key=lambda s: s.host)


class Counts(object):
    """Instances, running instances, migrations out and in, per host."""

    def __init__(self):
        self.instances: collections.Counter[str] = collections.Counter()
        self.running: collections.Counter[str] = collections.Counter()
        self.out: collections.Counter[str] = collections.Counter()
        self.in_: collections.Counter[str] = collections.Counter()
        self._seen: set = set()

    def servers(self, servers):
        for srv in servers:
            self.instances[srv.compute_host] += 1
            if srv.power_state == nova.POWER_RUNNING:
                self.running[srv.compute_host] += 1

    def migrations(self, migrations):
        for m in migrations:
            if in_flight(m) and m.id not in self._seen:
                self._seen.add(m.id)
                self.out[m.source_compute] += 1
                self.in_[m.dest_compute] += 1


def _servers(compute, **query):
    return calls.call_with_retry(lambda: list(compute.servers(
        details=True, all_projects=True, **query)))


def _migrations(compute, host):
    return calls.call_with_retry(lambda: list(compute.migrations(
        host=host)))


def moving(server):
    """Is a migration of this server under way (or awaiting its
    confirmation)?"""
    return bool(server.task_state) or server.status in MOVING_STATUS


def count(compute, hosts):
    """``Counts`` for ``hosts`` (see the module docstring)."""
    counts = Counts()
    if len(hosts) <= PER_HOST_MAX:
        for host in hosts:
            counts.servers(_servers(compute, compute_host=host))
            counts.migrations(_migrations(compute, host))
        return counts
    servers = _servers(compute)
    counts.servers(servers)
    for host in sorted({s.compute_host for s in servers
                        if moving(s) and s.compute_host}):
        counts.migrations(_migrations(compute, host))
    return counts


def _selected(services, leases, request):
    return [s for s in services
            if request.status in (None, s.status)
            and request.state in (None, s.state)
            and (not request.leased or s.host in leases)]


def run(conn, request, events=None):
    """``compute node list``: ``NodeRow`` per compute host of ``request``
    (see the module docstring)."""
    return rows(conn.compute, request)


def rows(compute, request):
    """``NodeRow`` per compute host of ``request``."""
    request.validate()
    services = compute_services(compute, request.aggregate, request.zone,
                                request.hosts)
    leases = lease.holders(compute, services)
    services = _selected(services, leases, request)
    counts = (count(compute, [s.host for s in services])
              if request.long and services else None)
    out = []
    for svc in services:
        held = leases.get(svc.host)
        row = NodeRow(
            host=svc.host, zone=svc.availability_zone, status=svc.status,
            state=svc.state, updated_at=svc.updated_at,
            disabled_reason=svc.disabled_reason,
            forced_down=bool(svc.is_forced_down),
            lease_owner=held.owner if held else None,
            lease_since=held.since if held else None,
            lease_expires=held.expires_text if held else None)
        if counts is not None:
            row.instances = counts.instances[svc.host]
            row.running = counts.running[svc.host]
            row.migrations_out = counts.out[svc.host]
            row.migrations_in = counts.in_[svc.host]
        out.append(row)
    return out


def gather(compute, aggregate=None, zone=None):
    """Every row of an aggregate or zone (or the cloud) with its counts:
    ``run`` with ``long`` (``compute node maintain`` orders hosts by
    their instances)."""
    return rows(compute, Request(aggregate=aggregate, zone=zone, long=True))
