"""``compute node list``: one row per compute host, from four lists.

``gather(compute, aggregate=None, zone=None)`` returns ``NodeRow`` objects:
the nova-compute service (OSC's ``compute service list`` fields), the lease
an osc-nodeops run holds on the host (``ops/lease.py``: owner, since,
expiry), the running instances and the migrations in flight from and to the
host.  API calls: the services, the aggregates (the leases' and, with
``aggregate``, the one named), the servers of every project and the
migrations -- never one GET per host.
"""

import collections
import dataclasses

from osc_nodeops import errors
from osc_nodeops.ops import lease
from osc_nodeops.ops.cloud import calls
from osc_nodeops.ops.cloud import nova

COLUMNS = ('Host', 'Zone', 'Status', 'State', 'Updated At',
           'Disabled Reason', 'Forced Down', 'Lease Owner', 'Lease Since',
           'Lease Expires', 'Instances', 'Running Instances', 'Migrations Out',
           'Migrations In')


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
    instances: int = 0
    running: int = 0
    migrations_out: int = 0
    migrations_in: int = 0

    def row(self):
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


def compute_services(compute, aggregate=None, zone=None):
    """The nova-compute services, sorted by host, filtered by aggregate
    and/or availability zone (``NotFound`` when none is left)."""
    services = [s for s in calls.call_with_retry(
        lambda: list(compute.services(binary=nova.COMPUTE_BINARY)))
        if s.binary == nova.COMPUTE_BINARY]
    if aggregate is not None:
        hosts = set(aggregate_hosts(compute, aggregate))
        services = [s for s in services if s.host in hosts]
        if not services:
            raise errors.NotFound('aggregate %r holds no compute host'
                                  % aggregate)
    if zone is not None:
        services = [s for s in services if s.availability_zone == zone]
        if not services:
            raise errors.NotFound('no compute host in availability zone %r'
                                  % zone)
    return sorted(services, key=lambda s: s.host)


def gather(compute, aggregate=None, zone=None):
    """``NodeRow`` per compute host (see the module docstring)."""
    services = compute_services(compute, aggregate, zone)
    servers = calls.call_with_retry(lambda: list(compute.servers(
        details=True, all_projects=True)))
    migrations = calls.call_with_retry(lambda: list(compute.migrations()))
    instances: collections.Counter[str] = collections.Counter()
    running: collections.Counter[str] = collections.Counter()
    for srv in servers:
        instances[srv.compute_host] += 1
        if srv.power_state == nova.POWER_RUNNING:
            running[srv.compute_host] += 1
    out_: collections.Counter[str] = collections.Counter()
    in_: collections.Counter[str] = collections.Counter()
    for m in migrations:
        if in_flight(m):
            out_[m.source_compute] += 1
            in_[m.dest_compute] += 1
    leases = lease.holders(compute, services)
    rows = []
    for svc in services:
        held = leases.get(svc.host)
        rows.append(NodeRow(
            host=svc.host, zone=svc.availability_zone, status=svc.status,
            state=svc.state, updated_at=svc.updated_at,
            disabled_reason=svc.disabled_reason,
            forced_down=bool(svc.is_forced_down),
            lease_owner=held.owner if held else None,
            lease_since=held.since if held else None,
            lease_expires=held.expires_text if held else None,
            instances=instances[svc.host], running=running[svc.host],
            migrations_out=out_[svc.host], migrations_in=in_[svc.host]))
    return rows
