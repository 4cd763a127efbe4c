"""Drain pre-flight: what cannot move, and whether the cloud can hold the rest.

Two parts, both run before anything changes (issue 12 items 1 and 2):

``blockers(server, facts)``
    the per-instance rules: every reason a move would be refused or would
    hurt (passthrough ports, PCI / vGPU / accelerator flavors, pinning and
    NUMA, server groups, locks, disks, config drive), each a ``Reason``
    naming the methods it rules out and what the operator can do.
``pack(demands, hosts)``
    the capacity model: destination hosts the scheduler could pick, their
    placement inventories (total, reserved, allocation ratio, max_unit) and
    usages, the instances to move packed onto them largest first, spreading
    like nova's RAM weigher, honouring anti-affinity.

``gather.gather`` (``gather.py``) reads the cloud with a fixed number of
list calls plus two placement GETs per candidate host (O(hosts), never one
GET per server); ``apply`` annotates the drain's plan items.  Pure
functions here, so the rules are unit-tested without a cloud.
"""

import dataclasses
import logging

from osc_nodeops.ops.cloud import nova

LOG = logging.getLogger(__name__)

LIVE = 'live'
COLD = 'cold'
MOVES = (LIVE, COLD)

# Port vnic types that are not plain virtio: a device on the host behind
# the port (neutron binding:vnic_type).
PASSTHROUGH_VNIC = ('direct', 'direct-physical', 'macvtap', 'vdpa',
                    'virtio-forwarder', 'accelerator-direct',
                    'accelerator-direct-physical', 'remote-managed')

# nova 20.0.0 (Train, compute API 2.79) live-migrates NUMA / pinned /
# huge-page guests (NUMA-aware live migration) and SR-IOV direct / macvtap
# ports (unplug before, plug after).  Older clouds refuse or break them.
TRAIN = '2.79'
# nova 29.0.0 (2024.1, compute API 2.96): live migration of vGPU (mdev);
# the server record shows ``pinned_availability_zone``.
CARACAL = '2.96'
PINNED_AZ = CARACAL

STANDARD_CLASSES = ('VCPU', 'PCPU', 'MEMORY_MB', 'DISK_GB')

# The zone of a host in no availability-zone aggregate.
DEFAULT_ZONE = 'nova'


@dataclasses.dataclass(frozen=True)
class Reason(object):
    """Why an instance cannot (or should not) move a way, and what to do.

    ``blocks``: the methods it rules out (``live``, ``cold``); empty for a
    note the operator should know (e.g. a block migration is needed).
    ``pre_existing``: the condition was there before the drain.
    """

    code: str
    message: str
    blocks: tuple = ()
    fix: str = ''
    pre_existing: bool = True

    def as_dict(self):
        return {'code': self.code, 'message': self.message,
                'blocks': list(self.blocks), 'fix': self.fix,
                'pre_existing': self.pre_existing}

    def __str__(self):
        return '%s: %s' % (self.code, self.message)


@dataclasses.dataclass
class Facts(object):
    """What the rules need to know about the cloud (from ``gather``)."""

    features: nova.Features | None = None
    ports: dict = dataclasses.field(default_factory=dict)  # server id -> []
    groups: dict = dataclasses.field(default_factory=dict)  # server id -> grp
    hosts_of: dict = dataclasses.field(default_factory=dict)  # srv id -> host
    candidates: tuple = ()  # host names a server could go to
    draining: tuple = ()    # hosts being drained
    block_migration: str = 'auto'

    def supports(self, version):
        return self.features is not None and self.features.supports(version)


# ------------------------------------------------------------- flavors

def flavor_of(server):
    """The embedded flavor (compute API 2.47+) as a dict, or {}."""
    flavor = getattr(server, 'flavor', None)
    if flavor is None:
        return {}
    if isinstance(flavor, dict):
        return flavor
    return {k: getattr(flavor, k, None) for k in (
        'vcpus', 'ram', 'disk', 'ephemeral', 'swap', 'extra_specs',
        'original_name', 'name')}


def extra_specs(server):
    return flavor_of(server).get('extra_specs') or {}


def _int(value, default=0):
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def volume_backed(server):
    image = getattr(server, 'image', None)
    image_id = image.get('id') if isinstance(image, dict) else image
    return not image_id


def demand(server):
    """Placement resources the server holds: {resource class: amount}.

    From the flavor as nova translates it (``resources:*`` extra specs
    override; a dedicated CPU policy asks for PCPU; a volume-backed root
    disk takes no DISK_GB for the root)."""
    flavor = flavor_of(server)
    specs = flavor.get('extra_specs') or {}
    vcpus = _int(flavor.get('vcpus'))
    cpu_class = 'PCPU' if specs.get('hw:cpu_policy') == 'dedicated' \
        else 'VCPU'
    swap_mb = _int(flavor.get('swap'))
    disk = _int(flavor.get('ephemeral')) + (swap_mb + 1023) // 1024
    if not volume_backed(server):
        disk += _int(flavor.get('disk'))
    out = {cpu_class: vcpus, 'MEMORY_MB': _int(flavor.get('ram')),
           'DISK_GB': disk}
    for key, value in specs.items():
        if key.startswith('resources') and ':' in key:
            rc = key.split(':', 1)[1]
            out[rc] = _int(value)
    return {rc: n for rc, n in out.items() if n > 0}


# ---------------------------------------------------------- the rules

def _port_reasons(server, ports, facts):
    out = []
    for port in ports:
        vnic = getattr(port, 'binding_vnic_type', None) or 'normal'
        if vnic not in PASSTHROUGH_VNIC:
            continue
        what = 'port %s has binding:vnic_type %s' % (port.id, vnic)
        if vnic in ('direct', 'macvtap') and facts.supports(TRAIN):
            out.append(Reason(
                'passthrough-port', '%s: nova live-migrates it by '
                'unplugging the VF before and plugging one at the '
                'destination after (the guest loses that network during '
                'the move); the destination needs a free VF on the same '
                'physical network' % what))
        elif vnic.startswith('accelerator'):
            out.append(Reason(
                'passthrough-port', '%s: nova moves no server with a '
                'Cyborg accelerator port' % what, blocks=MOVES,
                fix='detach the port, or leave the server (--exclude)'))
        else:
            out.append(Reason(
                'passthrough-port', '%s: nova cannot live-migrate it%s' % (
                    what, '' if vnic not in ('direct', 'macvtap') else
                    ' (before compute API %s, nova 20 Train)' % TRAIN),
                blocks=(LIVE,),
                fix='stop the server (it is then cold-migrated), give the '
                    'owner\'s consent with --fallback cold, or --exclude it'))
    return out


def _flavor_reasons(server, facts):
    specs = extra_specs(server)
    out = []
    cold_fix = ('stop the server (it is then cold-migrated), or --exclude '
                'it')
    if specs.get('pci_passthrough:alias'):
        out.append(Reason(
            'pci-passthrough', 'flavor asks for PCI devices (%s): nova does '
            'not live-migrate flavor-based PCI passthrough (except devices '
            'the operator tagged live_migratable, nova 2025.1+, which this '
            'tool cannot see)' % specs['pci_passthrough:alias'],
            blocks=(LIVE,), fix=cold_fix))
    if specs.get('accel:device_profile'):
        out.append(Reason(
            'accelerator', 'flavor asks for Cyborg device profile %s: nova '
            'neither live- nor cold-migrates it' %
            specs['accel:device_profile'], blocks=MOVES,
            fix='leave the server (--exclude) or rebuild it elsewhere'))
    rcs = {k.split(':', 1)[1]: v for k, v in specs.items()
           if k.startswith('resources') and ':' in k}
    if any(rc.endswith('VGPU') or rc == 'VGPU' for rc in rcs):
        if facts.supports(CARACAL):
            out.append(Reason(
                'vgpu', 'flavor asks for a vGPU: nova (2024.1+) '
                'live-migrates it only when both hosts offer the same mdev '
                'type and libvirt/QEMU support it'))
        else:
            out.append(Reason(
                'vgpu', 'flavor asks for a vGPU: nova before 2024.1 (compute '
                'API %s) cannot live-migrate it' % CARACAL,
                blocks=(LIVE,), fix=cold_fix))
    custom = sorted(rc for rc, v in rcs.items() if rc not in
                    STANDARD_CLASSES and not rc.endswith('VGPU')
                    and _int(v) > 0)
    if custom:
        out.append(Reason(
            'custom-resource', 'flavor asks for %s: only hosts whose '
            'providers offer it can take the server (checked by the '
            'capacity pre-flight)' % ', '.join(custom)))
    numa = []
    if specs.get('hw:cpu_policy') in ('dedicated', 'mixed') or \
            _int(rcs.get('PCPU')) > 0:
        numa.append('CPU pinning (hw:cpu_policy=%s)' % specs.get(
            'hw:cpu_policy', 'dedicated'))
    if specs.get('hw:numa_nodes'):
        numa.append('NUMA topology (hw:numa_nodes=%s)' %
                    specs['hw:numa_nodes'])
    if specs.get('hw:mem_page_size') not in (None, '', 'small'):
        numa.append('huge pages (hw:mem_page_size=%s)' %
                    specs['hw:mem_page_size'])
    if numa:
        if facts.supports(TRAIN):
            out.append(Reason(
                'numa', '%s: nova (Train+) live-migrates it only to a host '
                'with the same free pinned CPUs / NUMA cells / pages; the '
                'scheduler checks it, placement alone does not' %
                ', '.join(numa)))
        else:
            out.append(Reason(
                'numa', '%s: nova before Train (compute API %s) cannot '
                'live-migrate it safely' % (', '.join(numa), TRAIN),
                blocks=(LIVE,), fix=cold_fix))
    return out


def _disk_reasons(server, facts):
    out = []
    flavor = flavor_of(server)
    local = []
    if not volume_backed(server):
        local.append('root disk')
    if _int(flavor.get('ephemeral')):
        local.append('ephemeral disk (%s GB)' % flavor.get('ephemeral'))
    if _int(flavor.get('swap')):
        local.append('swap (%s MB)' % flavor.get('swap'))
    if local:
        if facts.block_migration == 'no':
            out.append(Reason(
                'local-disk', 'local %s: --block-migration no works only '
                'when the instances directory is shared storage' %
                ', '.join(local)))
        else:
            out.append(Reason(
                'local-disk', 'local %s: a live migration copies it (block '
                'migration) unless the instances directory is shared' %
                ', '.join(local)))
    if getattr(server, 'has_config_drive', None) or \
            getattr(server, 'config_drive', None) in (True, 'True', 'true'):
        out.append(Reason(
            'config-drive', 'config drive: a block live migration needs '
            'config_drive_format=vfat (or libvirt that copies the ISO) '
            'on the computes'))
    return out


def _group_reasons(server, facts):
    group = facts.groups.get(server.id)
    if group is None:
        return []
    policy = _policy(group)
    members = [m for m in (getattr(group, 'member_ids', None) or ())
               if m != server.id]
    here = sorted(m for m in members
                  if facts.hosts_of.get(m) in facts.draining)
    name = '%s (%s)' % (getattr(group, 'name', None), group.id)
    if policy == 'affinity':
        if not members:
            return [Reason('affinity', 'server group %s (affinity) has no '
                           'other member: it moves alone' % name)]
        return [Reason(
            'affinity', 'server group %s (affinity): its members %s must '
            'stay on one host, and nova moves servers one at a time, so the '
            'scheduler refuses every destination but the host being '
            'drained; the group moves together or not at all' % (
                name, ', '.join(members)), blocks=MOVES,
            fix='move the group by hand in a window (stop, cold-migrate '
                'each to one host with --host), or --exclude its members')]
    if policy == 'anti-affinity':
        taken = {facts.hosts_of.get(m) for m in members} - {None}
        free = [h for h in facts.candidates if h not in taken]
        if not free:
            return [Reason(
                'anti-affinity', 'server group %s (anti-affinity): every '
                'candidate host already holds a member (%s)' % (
                    name, ', '.join(sorted(taken)) or 'none'), blocks=MOVES,
                fix='enable or add a host without a member, or --exclude '
                    'the server')]
        note = 'server group %s (anti-affinity): needs a host without a ' \
               'member (free: %s)' % (name, ', '.join(sorted(free)))
        if here:
            note += '; members also on the drained host(s): %s' % ', '.join(
                here)
        return [Reason('anti-affinity', note)]
    if policy in ('soft-affinity', 'soft-anti-affinity'):
        return [Reason(policy, 'server group %s (%s): the scheduler prefers '
                       'but does not require it' % (name, policy))]
    return []


def _policy(group):
    policy = getattr(group, 'policy', None)
    if not policy:
        policies = getattr(group, 'policies', None) or ()
        policy = policies[0] if policies else None
    return policy


def blockers(server, facts):
    """Every ``Reason`` for one server (blocking ones and notes)."""
    out = []
    if getattr(server, 'is_locked', False):
        why = getattr(server, 'locked_reason', None)
        out.append(Reason(
            'locked', 'the server is locked%s: its owner or an admin said '
            'not to touch it; the drain does not move it' % (
                ' (%s)' % why if why else ''), blocks=MOVES,
            fix='openstack server unlock %s (after asking whoever locked '
                'it), then rerun' % server.id))
    out.extend(_port_reasons(server, facts.ports.get(server.id, ()), facts))
    out.extend(_flavor_reasons(server, facts))
    out.extend(_group_reasons(server, facts))
    out.extend(_disk_reasons(server, facts))
    return out


def blocking(reasons, method):
    """The reasons that rule out ``method``."""
    return [r for r in reasons if method in r.blocks]


# ------------------------------------------------------------ capacity

@dataclasses.dataclass
class Host(object):
    """A destination candidate: free room per resource class."""

    name: str
    free: dict            # resource class -> units left
    max_unit: dict        # resource class -> largest single allocation
    zone: str | None = None
    members: set = dataclasses.field(default_factory=set)  # group ids

    def fits(self, want):
        for rc, n in want.items():
            if n > self.free.get(rc, 0) or n > self.max_unit.get(rc, 0):
                return False
        return True

    def take(self, want):
        for rc, n in want.items():
            self.free[rc] = self.free.get(rc, 0) - n


def host_from_placement(name, inventories, usages, zone=None):
    """``inventories``: {rc: {total, reserved, allocation_ratio, max_unit}}
    (placement's shape); ``usages``: {rc: used}."""
    free = {}
    max_unit = {}
    for rc, inv in inventories.items():
        total = inv.get('total', 0)
        reserved = inv.get('reserved', 0)
        ratio = inv.get('allocation_ratio', 1.0)
        free[rc] = int((total - reserved) * ratio) - usages.get(rc, 0)
        max_unit[rc] = inv.get('max_unit', total)
    return Host(name, free, max_unit, zone=zone)


@dataclasses.dataclass
class Demand(object):
    """One instance to place."""

    id: str
    want: dict
    zone: str | None = None           # must stay in this AZ (None: any)
    target: str | None = None         # --target-host
    anti_group: str | None = None     # anti-affinity group id
    avoid: set = dataclasses.field(default_factory=set)  # hosts with members


def _size(d):
    w = d.want
    return (w.get('MEMORY_MB', 0), w.get('VCPU', 0) + w.get('PCPU', 0),
            w.get('DISK_GB', 0), d.id)


def pack(demands, hosts):
    """Largest first, each to the fitting host with the most free RAM.

    Returns {demand id: (host name or None, why)}; ``hosts`` are consumed
    (their ``free`` goes down by what was packed)."""
    by_name = {h.name: h for h in hosts}
    out = {}
    for d in sorted(demands, key=_size, reverse=True):
        pool = [by_name[d.target]] if d.target in by_name else (
            [] if d.target else list(hosts))
        if d.zone:
            pool = [h for h in pool if h.zone == d.zone]
        if d.anti_group:
            pool = [h for h in pool if h.name not in d.avoid
                    and d.anti_group not in h.members]
        fitting = [h for h in pool if h.fits(d.want)]
        if not fitting:
            out[d.id] = (None, _no_fit(d, pool))
            continue
        best = min(fitting, key=lambda h: (-h.free.get('MEMORY_MB', 0),
                                           h.name))
        best.take(d.want)
        if d.anti_group:
            best.members.add(d.anti_group)
        out[d.id] = (best.name, 'fits on %s' % best.name)
    return out


def _no_fit(d, pool):
    want = ', '.join('%s %d' % (rc, n) for rc, n in sorted(d.want.items()))
    if not pool:
        where = []
        if d.target:
            where.append('--target-host %s' % d.target)
        if d.zone:
            where.append('availability zone %s, where the server is '
                         'pinned' % d.zone)
        if d.anti_group:
            where.append('a host without a member of its anti-affinity '
                         'group')
        return 'no candidate host%s' % (
            (' (%s)' % ', '.join(where)) if where else '')
    short = []
    for h in sorted(pool, key=lambda h: h.name):
        lacking = ['%s %d free' % (rc, h.free.get(rc, 0))
                   for rc, n in sorted(d.want.items())
                   if n > h.free.get(rc, 0) or n > h.max_unit.get(rc, 0)]
        short.append('%s: %s' % (h.name, ', '.join(lacking)))
    return '%sdoes not fit (needs %s; %s)' % (
        ('pinned to availability zone %s: ' % d.zone) if d.zone else '',
        want, '; '.join(short))


# ------------------------------------------------------------- the plan

def pinned_zone(server, facts):
    """The availability zone nova keeps ``server`` in, or None.

    nova constrains a move to a zone only when the request spec has one
    (the zone asked for at boot, ``[DEFAULT]default_schedule_zone``, or a
    volume's zone with ``[cinder]cross_az_attach = False``); compute API
    2.96 shows it as ``pinned_availability_zone``.  The server's
    ``availability_zone`` is where it runs now, not a constraint: an
    unpinned server may land in any zone.  Below 2.96 the pin is not
    visible (None; ``gather`` says so)."""
    if not facts.supports(PINNED_AZ):
        return None
    return getattr(server, 'pinned_availability_zone', None) or None


def candidates_for(item, cloud):
    """Hosts a retry of ``item`` may be sent to, its ``landing`` first:
    the pre-flight's candidates, within the server's pinned zone."""
    zone = pinned_zone(item.server, cloud.facts)
    others = tuple(h for h in cloud.facts.candidates if zone is None
                   or cloud.zones.get(h, DEFAULT_ZONE) == zone)
    return tuple(dict.fromkeys(
        ((item.landing,) if item.landing else ()) + others))


def method_kind(item):
    name = item.action.name if item.action is not None else None
    return COLD if name in ('cold', 'stop-cold') else LIVE


def apply(items, cloud, target_host=None, shared=False):
    """Blockers and capacity onto the drain's plan items.

    An item whose method a reason rules out becomes a skip with that
    reason (never silently another method).  Every item to move gets
    ``fits`` (True / False / None when capacity was not checked) and
    ``landing``.  Returns the items that would not fit.  ``shared``: pack
    onto ``cloud.hosts`` themselves (several hosts' plans on one pool)."""
    facts = cloud.facts
    for item in items:
        item.blockers = blockers(item.server, facts)
        if item.action is None or item.adopt:
            continue
        stop = blocking(item.blockers, method_kind(item))
        if stop:
            item.action = None
            item.reason = '; '.join(
                '%s (%s)' % (r, r.fix) if r.fix else str(r) for r in stop)
    if cloud.hosts is None:
        return []
    demands = []
    for item in items:
        if item.action is None or item.adopt:
            continue
        group = facts.groups.get(item.id)
        anti = group.id if group is not None and \
            _policy(group) == 'anti-affinity' else None
        if anti:   # the slots name no other host than its landing
            item.data['anti_affinity'] = True
        avoid = set()
        if anti:
            avoid = {facts.hosts_of.get(m) for m in group.member_ids
                     if m != item.id} - {None}
        zone = pinned_zone(item.server, facts)
        want = cloud.allocations.get(item.id) or _fallback_pcpu(
            demand(item.server), cloud.hosts)
        demands.append(Demand(item.id, want, zone=zone,
                              target=target_host, anti_group=anti,
                              avoid=avoid))
    pool = cloud.hosts if shared else [dataclasses.replace(
        h, free=dict(h.free), members=set(h.members)) for h in cloud.hosts]
    placed = pack(demands, pool)
    misfits = []
    for item in items:
        if item.id not in placed or item.action is None or item.adopt:
            continue
        landing, why = placed[item.id]
        item.landing = landing
        item.fits = landing is not None
        if not item.fits:
            item.capacity = Reason('capacity', why, blocks=MOVES,
                                   fix='free room, enable a host, or rerun '
                                       'with --allow-partial')
            misfits.append(item)
    return misfits


def _fallback_pcpu(want, hosts):
    """nova asks for VCPU instead of PCPU when no provider has PCPU
    (``[workarounds]disable_fallback_pcpu_query`` false, the default)."""
    if 'PCPU' in want and not any('PCPU' in h.max_unit for h in hosts):
        want = dict(want)
        want['VCPU'] = want.get('VCPU', 0) + want.pop('PCPU')
    return want


def partial(misfits):
    """``--allow-partial``: what does not fit is skipped, with why."""
    for item in misfits:
        item.action = None
        item.reason = str(item.capacity)
