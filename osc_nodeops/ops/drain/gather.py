"""What the drain's pre-flight reads from the cloud (``gather``).

A fixed number of list calls (services, ports, server groups, aggregates,
hypervisors) plus two placement GETs per candidate host (O(hosts), never
one GET per server); the rules and the packing that use it are pure
(``preflight.py``).
"""

import dataclasses
import threading

from osc_nodeops import errors
from osc_nodeops.ops.cloud import calls
from osc_nodeops.ops.cloud import placement
from osc_nodeops.ops.drain import preflight


@dataclasses.dataclass
class Cloud(object):
    """What ``gather`` read: the rules' facts and the candidate hosts."""

    facts: preflight.Facts
    hosts: list | None    # Host, free room as placement says now (None:
    #                       capacity not checked)
    zones: dict           # host name -> availability zone
    calls: int = 0
    notes: list = dataclasses.field(default_factory=list)
    # What each server holds on the source provider now (placement's
    # allocations of the host, one GET): the demand, exact.
    allocations: dict = dataclasses.field(default_factory=dict)


class _Reader(object):
    """Counted, retried list calls (transient faults only); thread-safe
    (``calls.concurrently``)."""

    def __init__(self):
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, fn):
        with self._lock:
            self.calls += 1
        return calls.call_with_retry(fn)


def _zones(aggregates):
    zones = {}
    for agg in aggregates:
        zone = getattr(agg, 'availability_zone', None) or (
            getattr(agg, 'metadata', None) or {}).get('availability_zone')
        if zone:
            for h in getattr(agg, 'hosts', None) or ():
                zones[h] = zone
    return zones


def _placement_hosts(client, names, hypervisors, zones, notes):
    """Host objects for ``names`` from placement (O(names) GETs, a few
    at a time: ``calls.concurrently``)."""
    enabled = client.enabled()
    wanted = []
    for name in names:
        uuid = hypervisors.get(name)
        if uuid is None:
            notes.append('%s: no hypervisor record; not a candidate' % name)
            continue
        if uuid not in enabled:
            notes.append('%s: its provider has the %s trait; not a '
                         'candidate' % (name, placement.DISABLED_TRAIT))
            continue
        wanted.append((name, uuid))
    return calls.concurrently(
        lambda name=name, uuid=uuid: preflight.host_from_placement(
            name, client.inventories(uuid), client.usages(uuid),
            zone=zones.get(name, preflight.DEFAULT_ZONE))
        for name, uuid in wanted)


class Pool(object):
    """The candidate hosts several plans pack onto (a drain's pre-pass, a
    wave's own plans): placement read once, by the first plan that needs
    it (the others wait for it, then pack on what the plans before them
    left), the packing one plan at a time (``packing``)."""

    def __init__(self):
        self.hosts = None
        self._reading = threading.Lock()
        self.packing = threading.Lock()

    def get(self, read):
        """The pool's hosts (``read()`` them if nobody has yet)."""
        with self._reading:
            if self.hosts is None:
                self.hosts = read()
            return self.hosts


def gather(conn, host, servers, features=None, draining=(),
           target_host=None, block_migration='auto', capacity=True,
           pool=None):
    """Read what the rules and the packing need, for ``servers`` on
    ``host``.  A fixed number of list calls, plus two placement GETs per
    candidate host, made once for all the plans of a ``pool`` (whose
    hosts ``Cloud.hosts`` then is)."""
    compute = conn.compute
    read = _Reader()
    draining = tuple(draining) or (host,)
    notes = []
    # The lists do not depend on each other: read at once.
    listings = [lambda: compute.services(binary='nova-compute'),
                lambda: conn.network.ports(binding_host_id=host),
                lambda: compute.server_groups(all_projects=True),
                compute.aggregates]
    if capacity:
        listings.append(lambda: compute.hypervisors(details=True))
    listed = calls.concurrently(lambda fn=fn: read(lambda: list(fn()))
                                for fn in listings)
    services, host_ports, groups, aggregates = listed[:4]
    hypervisors = listed[4] if capacity else []
    names = sorted(
        s.host for s in services if s.status == 'enabled'
        and s.state == 'up' and s.host not in draining)
    down = sorted(s.host for s in services if s.status == 'enabled'
                  and s.state != 'up' and s.host not in draining)
    if down:
        notes.append('not candidates (nova-compute down): %s' %
                     ', '.join(down))
    if target_host:
        names = [n for n in names if n == target_host]
    facts = preflight.Facts(features=features, draining=draining,
                  block_migration=block_migration, candidates=tuple(names))
    ids = {s.id for s in servers}
    for port in host_ports:
        if port.device_id in ids:
            facts.ports.setdefault(port.device_id, []).append(port)
    elsewhere = set()
    for group in groups:
        members = getattr(group, 'member_ids', None) or ()
        for m in members:
            if m in ids:
                facts.groups[m] = group
                elsewhere.update(set(members) - ids)
    for s in servers:
        facts.hosts_of[s.id] = host
    if elsewhere:
        for s in read(lambda: list(compute.servers(details=True,
                                                   all_projects=True))):
            if s.id in elsewhere:
                facts.hosts_of[s.id] = s.compute_host
    hosts: list | None = []
    zones = _zones(aggregates)
    if not facts.supports(preflight.PINNED_AZ):
        notes.append('availability-zone pins not visible (compute API %s '
                     'shows pinned_availability_zone, this cloud offers %s): '
                     'Landing may name a host outside the zone a server is '
                     'pinned to; nova keeps such a server in its zone' % (
                         preflight.PINNED_AZ,
                         getattr(features, 'effective', None) or 'unknown'))
    if capacity:
        hyps = {}
        for h in hypervisors:
            svc = getattr(h, 'service_details', None) or {}
            hyps[svc.get('host') or h.name] = h.id
        try:
            client = placement.Client(conn.placement, read=read,
                                      timeout=None)
            def read_hosts():
                return _placement_hosts(client, names, hyps, zones, notes)
            hosts = pool.get(read_hosts) if pool is not None \
                else read_hosts()
            allocations = _source_allocations(client, hyps.get(host))
        except Exception as exc:
            notes.append('capacity not checked: placement said %s' %
                         errors.one_line(exc, style=errors.STATUS))
            hosts = None
    return Cloud(facts=facts, hosts=hosts, zones=zones, calls=read.calls,
                 notes=notes, allocations=locals().get('allocations') or {})


def _source_allocations(client, uuid):
    """{consumer: {resource class: amount}} on the source provider."""
    if uuid is None:
        return {}
    return client.held(uuid)
