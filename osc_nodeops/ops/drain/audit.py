"""Post-drain audit: does anything in the cloud still tie servers to the host?

After the moves (issue 12 item 5), ``audit_host`` asks the three places
that can say so:

nova, servers
    the server list by host (all projects); with compute API below 2.88
    also the hypervisor's ``running_vms`` (nova dropped the field at 2.88,
    and openstacksdk asks for at most 2.88, so on a newer cloud the server
    list is the only count; ``Audit.sources`` says which was used);
nova, migration records
    every migration touching the host that is not over: a cold migration
    or resize ``finished`` but never confirmed (the server is
    VERIFY_RESIZE and placement keeps its resources on this host), or one
    still ``queued``/``preparing``/``running`` (or the cold steps);
placement
    the allocations on the host's resource provider (and its nested
    providers): each consumer must be a server still on the host (already
    reported) or the migration of an unfinished move (reported with it);
    anything else is left behind.  A consumer is called gone only when nova
    answers 404 for it as a server and it is no migration of the host; only
    then is ``allocation delete`` suggested.  The allocation of a server
    that lives elsewhere is removed from this provider alone
    (``allocation unset --provider``), never deleted.

Each leftover is a :class:`Finding` with the command that clears it.  nova
marks a live migration ``completed`` a moment before it drops the
migration's allocation, so findings that nova may still be clearing are
looked at again for up to ``SETTLE`` seconds before they count.

Every call goes through ``calls.call_with_retry`` on a connection whose
requests have a timeout (``calls.bound_api_timeout``).
"""

import dataclasses
import logging
import re

from osc_nodeops import errors
from osc_nodeops.ops import engine
from osc_nodeops.ops import runtime as runtime_mod
from osc_nodeops.ops.cloud import calls
from osc_nodeops.ops.cloud import nova
from osc_nodeops.ops.cloud import placement
from osc_nodeops.ops.cloud import waiting

LOG = logging.getLogger(__name__)

SETTLE = 20.0        # seconds nova gets to finish clearing up
SETTLE_INTERVAL = 2.0
MAX_LOOKUPS = 50     # GETs of unknown consumers per look
RUNNING_VMS_GONE = '2.88'   # compute API: hypervisors lose running_vms
MIGRATION_UUIDS = '2.59'    # compute API: migrations show their uuid

# Migration statuses that are over (the engine's final ones).
MIGRATION_OVER = nova.MIGRATION_FINAL
MIGRATION_OK = nova.MIGRATION_DONE
UNCONFIRMED = 'finished'

_UUID = re.compile(r'[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}')

# Finding codes
SERVER_ON_HOST = 'server-on-host'
RUNNING_VMS = 'running-vms'
UNCONFIRMED_RESIZE = 'unconfirmed-resize'
MIGRATION_IN_PROGRESS = 'migration-in-progress'
STALE_ALLOCATION = 'stale-allocation'
MIGRATION_ALLOCATION = 'migration-allocation'
ORPHAN_ALLOCATION = 'orphan-allocation'
UNKNOWN_CONSUMER = 'unknown-consumer'
NOT_CHECKED = 'not-checked'


@dataclasses.dataclass
class Finding(object):
    """One thing left on the host, and what clears it.

    ``subject``: what it is about (a server, migration or consumer ID);
    ``server_id``: the server it concerns, when known (its row carries
    it); ``command``: what clears it ('' when no command is safe to
    suggest); ``allowed``: the operator let it stay (``--allow-skipped``);
    ``settling``: nova may still be clearing it (looked at again)."""

    code: str
    subject: str
    message: str
    command: str = ''
    server_id: str | None = None
    allowed: bool = False
    settling: bool = False

    def as_dict(self):
        return {'code': self.code, 'subject': self.subject,
                'server_id': self.server_id, 'message': self.message,
                'command': self.command, 'allowed': self.allowed}

    def __str__(self):
        text = '%s: %s' % (self.code, self.message)
        if self.command:
            text += ' (clear: %s)' % self.command
        if self.allowed:
            text += ' [allowed: --allow-skipped]'
        return text


@dataclasses.dataclass
class Audit(object):
    """What the audit of one host found.

    ``sources``: what was looked at, in words (``servers``,
    ``migrations``, ``placement``); ``looks``: how many times (more than
    one when nova was still clearing up); ``calls``: API calls made."""

    host: str
    findings: list = dataclasses.field(default_factory=list)
    sources: dict = dataclasses.field(default_factory=dict)
    looks: int = 0
    calls: int = 0

    @property
    def clean(self):
        """Nothing at all is left."""
        return not self.findings

    @property
    def ok(self):
        """Nothing is left that the operator did not allow."""
        return all(f.allowed for f in self.findings)

    def for_server(self, server_id):
        return [f for f in self.findings if f.server_id == server_id]

    def head(self):
        """Clean, or how many leftovers: the line people read."""
        if self.clean:
            return '%s: clean' % self.host
        allowed = sum(1 for f in self.findings if f.allowed)
        return '%s: %d leftover(s)%s' % (
            self.host, len(self.findings),
            ' (%d allowed by --allow-skipped)' % allowed if allowed else '')

    def counts(self):
        """Which counts were used (and which microversion hid one): ``-v``
        and the ``--events`` file."""
        return '; '.join('%s: %s' % (k, v) for k, v in self.sources.items())

    def summary(self):
        return '%s (%s)' % (self.head(), self.counts())

    def as_dict(self):
        return {'host': self.host, 'clean': self.clean, 'ok': self.ok,
                'sources': dict(self.sources), 'looks': self.looks,
                'findings': [f.as_dict() for f in self.findings]}


# -------------------------------------------------------------- reading

class _Reader(object):
    """Counted calls with the engine's retries of transient faults."""

    def __init__(self, sleep=None):
        self.calls = 0
        self.sleep = sleep

    def __call__(self, fn):
        self.calls += 1
        return calls.call_with_retry(fn, sleep=self.sleep)


def _resources(res):
    return ', '.join('%s=%s' % (rc, n) for rc, n in sorted(res.items()))


def _hypervisors_of(compute, host, read):
    found = [h for h in read(lambda: list(compute.hypervisors(details=True)))
             if ((getattr(h, 'service_details', None) or {}).get('host')
                 or h.name) == host]
    return found


def _providers(client, hypervisors):
    """Resource provider UUIDs of the host: each hypervisor's (its ID from
    compute API 2.53, else the provider named after it) and the providers
    nested under them."""
    roots = []
    for hv in hypervisors:
        hid = str(hv.id)
        if _UUID.fullmatch(hid):
            roots.append(hid)
            continue
        roots.extend(client.named(hv.name))
    out = []
    for root in roots:
        out.extend([root] + sorted(client.tree(root) - {root}))
    return out


def _is_not_found(exc):
    return errors.http_status(exc) == 404


# ---------------------------------------------------------------- rules

def _migration_words(m):
    kind = {'live-migration': 'live migration', 'migration':
            'cold migration', 'resize': 'resize',
            'evacuation': 'evacuation'}.get(m.migration_type,
                                            m.migration_type or 'migration')
    return 'migration %s (%s of server %s, %s -> %s)' % (
        m.id, kind, m.server_id, m.source_compute, m.dest_compute)


def migration_findings(host, migrations, held=None):
    """Findings for the migrations touching ``host`` that are not over.

    ``held``: {migration uuid: resources} the migrations hold on the
    host's providers (said in the message)."""
    held = held or {}
    out = []
    for m in migrations:
        if m.status in MIGRATION_OVER:
            continue
        if host not in (m.source_compute, m.dest_compute):
            continue
        res = held.get(str(getattr(m, 'uuid', None) or ''))
        keeps = ('; placement keeps %s on %s for it (consumer %s)' % (
            _resources(res), host, m.uuid)) if res else ''
        if m.status == UNCONFIRMED:
            out.append(Finding(
                UNCONFIRMED_RESIZE, str(m.id),
                '%s finished but was never confirmed: the server is '
                'VERIFY_RESIZE%s' % (_migration_words(m), keeps),
                command='openstack server resize confirm %s' % m.server_id,
                server_id=m.server_id))
            continue
        live = m.migration_type in (None, 'live-migration')
        command = 'openstack server migration show %s %s' % (
            m.server_id, m.id)
        if live:
            command += ('; to stop it: openstack server migration abort '
                        '%s %s' % (m.server_id, m.id))
        out.append(Finding(
            MIGRATION_IN_PROGRESS, str(m.id),
            '%s is still %s%s' % (_migration_words(m), m.status, keeps),
            command=command, server_id=m.server_id))
    return out


def server_findings(host, servers, allowed=()):
    """A finding for every server nova still lists on ``host``."""
    return [Finding(
        SERVER_ON_HOST, s.id, 'server %s%s is still on %s (%s%s)' % (
            s.id, ' (%s)' % s.name if getattr(s, 'name', None) else '',
            host, s.status, ', task %s' % s.task_state
            if getattr(s, 'task_state', None) else ''),
        command='see its row; once that is dealt with: openstack compute '
                'node drain %s' % host,
        server_id=s.id, allowed=s.id in allowed,
        settling=bool(getattr(s, 'task_state', None)))
        for s in sorted(servers, key=lambda s: ((s.name or ''), s.id))]


def running_vms_finding(host, hypervisors, listed):
    """nova's own count (compute API below 2.88) against the list."""
    counted = sum(h.running_vms or 0 for h in hypervisors
                  if h.running_vms is not None)
    if counted <= listed:
        return None
    return Finding(
        RUNNING_VMS, host, 'the hypervisor record of %s counts %d running '
        'instance(s), the server list by host %d: nova-compute knows '
        'instances the API does not list here (or has not refreshed the '
        'count since the moves)' % (host, counted, listed),
        command='openstack hypervisor show %s (nova-compute refreshes it '
                'every update_resources_interval); if it stays, look on the '
                'node (virsh list --all) and rerun openstack compute node '
                'drain %s' % (hypervisors[0].name, host),
        settling=True)


def classify_consumer(host, rp, consumer, resources, server=None,
                      gone=False, migration=None, uuids_shown=True):
    """The finding for one allocation on ``rp`` that is neither a server
    on the host nor an unfinished migration's (those are reported with
    the server or the migration).

    ``server``: the consumer as a server (GET), or None; ``gone``: nova
    answered 404 for it; ``migration``: the consumer as a (finished)
    migration of the host; ``uuids_shown``: the compute API shows
    migration UUIDs (2.59+), so a consumer that is none of the host's
    migrations really is none."""
    res = _resources(resources)
    if migration is not None:
        ok = migration.status in MIGRATION_OK
        return Finding(
            MIGRATION_ALLOCATION, consumer,
            '%s is %s, but placement still holds %s on %s for it' % (
                _migration_words(migration), migration.status, res, host),
            command=('openstack resource provider allocation delete %s '
                     '(the allocation of a migration that is over)' %
                     consumer) if ok else
            ('nova-manage placement audit --resource_provider %s --verbose '
             '(the move failed: check server %s\'s own allocation first)' %
             (rp, migration.server_id)),
            server_id=migration.server_id, settling=ok)
    if server is not None:
        return Finding(
            STALE_ALLOCATION, consumer,
            'server %s is on %s (%s) but still holds %s on %s\'s provider '
            '%s' % (consumer, server.compute_host, server.status, res, host,
                    rp),
            command='openstack --os-placement-api-version 1.28 resource '
                    'provider allocation unset --provider %s %s (removes '
                    'only the part on %s; never delete a live server\'s '
                    'allocation)' % (rp, consumer, host),
            server_id=consumer,
            settling=bool(getattr(server, 'task_state', None)))
    if gone and uuids_shown:
        return Finding(
            ORPHAN_ALLOCATION, consumer,
            'consumer %s holds %s on %s\'s provider %s: nova has no server '
            'of that ID (404) and no migration of %s has that UUID' % (
                consumer, res, host, rp, host),
            command='openstack resource provider allocation delete %s' %
                    consumer)
    why = ('nova answered 404, but compute API below %s hides migration '
           'UUIDs, so it may be a migration' % MIGRATION_UUIDS) if gone \
        else 'it was not looked up'
    return Finding(
        UNKNOWN_CONSUMER, consumer,
        'consumer %s holds %s on %s\'s provider %s: %s' % (
            consumer, res, host, rp, why),
        command='nova-manage placement audit --resource_provider %s '
                '--verbose (nova tells instances from migrations; --delete '
                'removes what it finds orphaned)' % rp)


# ---------------------------------------------------------------- audit

def _look(conn, host, features, read, servers=None, allowed=()):
    """One look at nova and placement; ``(findings, sources)``."""
    compute = conn.compute
    findings = []
    sources = {}
    # Migrations first: nova marks a move over before it drops the
    # migration's allocation, never after.
    migrations = read(lambda: list(compute.migrations(host=host)))
    if servers is None:
        servers = read(lambda: list(compute.servers(
            details=True, all_projects=True, compute_host=host)))
    on_host = {s.id for s in servers}
    hypervisors = _hypervisors_of(compute, host, read)
    findings.extend(server_findings(host, servers, allowed))
    offered = not features.supports(RUNNING_VMS_GONE) and any(
        h.running_vms is not None for h in hypervisors)
    if offered:
        sources['servers'] = (
            '%d listed by host; hypervisor running_vms %d (compute API %s)'
            % (len(servers), sum(h.running_vms or 0 for h in hypervisors),
               features.effective))
        found = running_vms_finding(host, hypervisors, len(servers))
        if found is not None:
            findings.append(found)
    else:
        sources['servers'] = (
            '%d listed by host (hypervisor running_vms is not offered: '
            'nova dropped it at compute API %s, this cloud speaks %s)' % (
                len(servers), RUNNING_VMS_GONE, features.effective))
    by_uuid = {str(m.uuid): m for m in migrations
               if getattr(m, 'uuid', None)}
    open_ = [m for m in migrations if m.status not in MIGRATION_OVER]
    sources['migrations'] = '%d record(s) touch %s, %d not over' % (
        len(migrations), host, len(open_))
    if not hypervisors:
        sources['placement'] = 'not checked: no hypervisor record of %s' % (
            host,)
        findings.append(Finding(
            NOT_CHECKED, host, 'placement not checked: nova lists no '
            'hypervisor for %s' % host))
        findings.extend(migration_findings(host, migrations))
        return findings, sources
    client = placement.Client(conn.placement, read=read, timeout=None)
    rps = _providers(client, hypervisors)
    held: dict = {}   # consumer -> (rp, resources)
    for rp in rps:
        for consumer, res in client.held(rp).items():
            held.setdefault(consumer, (rp, res))
    sources['placement'] = '%d allocation(s) on provider(s) %s' % (
        len(held), ', '.join(rps) or 'none')
    findings.extend(migration_findings(
        host, migrations, {c: r for c, (_, r) in held.items()}))
    uuids_shown = features.supports(MIGRATION_UUIDS)
    lookups = 0
    for consumer, (rp, res) in sorted(held.items()):
        if consumer in on_host:
            continue  # a server still on the host: reported above
        m = by_uuid.get(consumer)
        if m is not None and m.status not in MIGRATION_OVER:
            continue  # with its migration, above
        if m is not None:
            findings.append(classify_consumer(host, rp, consumer, res,
                                              migration=m))
            continue
        if lookups >= MAX_LOOKUPS:
            findings.append(classify_consumer(host, rp, consumer, res))
            continue
        lookups += 1
        server = None
        gone = False
        try:
            server = read(lambda: compute.get_server(consumer))
        except Exception as exc:
            if not _is_not_found(exc):
                raise
            gone = True
        if server is not None and server.compute_host == host:
            findings.extend(server_findings(host, [server], allowed))
            continue
        findings.append(classify_consumer(
            host, rp, consumer, res, server=server, gone=gone,
            uuids_shown=uuids_shown))
    return findings, sources


def audit_host(conn, host, features=None, servers=None, allowed=(),
               runtime=None):
    """Look at ``host`` until nothing is settling (at most ``SETTLE``
    seconds, a look every ``SETTLE_INTERVAL``, on the clock and sleep of
    ``runtime``).  ``servers``: the host's server list just made (the first
    look uses it); ``allowed``: IDs of servers the operator let stay.

    Returns an :class:`Audit`.  An API error while looking is a finding
    (``not-checked``): a host counts as drained only when the audit could
    look."""
    runtime = runtime or runtime_mod.Runtime()
    calls.bound_api_timeout(conn)
    features = features or nova.Features.from_proxy(conn.compute)
    read = _Reader(sleep=runtime.sleep)
    result = Audit(host)
    first = [servers]  # later looks list again

    def settled():
        result.looks += 1
        result.findings, result.sources = _look_or_finding(
            conn, host, features, read,
            servers=first.pop() if first else None, allowed=allowed)
        return not any(f.settling for f in result.findings)

    # The last look when the time is up is the audit's verdict.
    waiting.wait_until(settled, SETTLE, SETTLE_INTERVAL, last_look=True,
                       runtime=runtime)
    result.calls = read.calls
    return result


def _look_or_finding(conn, host, features, read, servers, allowed):
    """One look (``_look``); a look that failed is a ``not-checked``
    finding."""
    try:
        return _look(conn, host, features, read, servers=servers,
                     allowed=allowed)
    except Exception as exc:
        LOG.debug('audit failed', exc_info=True)
        return [Finding(NOT_CHECKED, host, 'the audit could not look: %s' %
                        errors.one_line(exc),
                        command='rerun openstack compute node drain %s' %
                        host)], {'error': errors.one_line(exc)}


# ------------------------------------------------------- the drain's hook

def after_drain(ctx, report, remaining, opts):
    """The end of a drain (``run.py``): audit the host, put the
    result on ``report.audit``; a host that is not clean is not drained
    (``report.ok`` false), except for servers ``--allow-skipped`` let
    stay.  Needs the drain's connection (``ctx.preflight``); without one
    nothing is audited (``report.audit`` stays None)."""
    conn = (getattr(ctx, 'preflight', None) or (None,))[0]
    if conn is None:
        return None
    # Servers the drain's own verdict lets stay: a skip that is no failure,
    # or any skip under --allow-skipped.
    allowed = {i.id for i in report.items
               if i.action is None and (i.ok or (
                   i.result == engine.SKIPPED and opts.allow_skipped))}
    try:
        result = audit_host(conn, report.host, ctx.features,
                            servers=remaining, allowed=allowed)
    except KeyboardInterrupt:
        # Ctrl-C while auditing: the moves stand, the audit is not done.
        report.interrupted = True
        report.ok = False
        ctx.emit('audit', '%s: interrupted; not audited' % report.host)
        return None
    report.audit = result
    known = {i.id: i for i in report.items}
    for f in result.findings:
        ctx.emit('audit', str(f), item=known.get(f.server_id))
    ctx.emit('audit', result.head(), detail=result.counts())
    if not result.ok:
        report.ok = False
    return result


# ------------------------------------------------------------ the rows

def row_findings(report):
    """{id(item): [finding dicts] or None} for every row of a drain
    report: None where no audit ran (a dry run, a refusal)."""
    out = {}
    for host in getattr(report, 'hosts', ()):
        result = getattr(host, 'audit', None)
        for item in host.items:
            out[id(item)] = None if result is None else [
                f.as_dict() for f in result.for_server(item.id)]
    return out


def extra_rows(report):
    """``(row, [finding dict])`` for every finding that is about no row's
    server (an orphan allocation, a server moved away by hand with its
    resize unconfirmed): a row in the engine's columns, Method ``audit``,
    Result ``leftover``."""
    out = []
    for host in getattr(report, 'hosts', ()):
        result = getattr(host, 'audit', None)
        if result is None:
            continue
        ids = {i.id for i in host.items}
        for f in result.findings:
            if f.server_id is not None and f.server_id in ids:
                continue
            out.append(((f.server_id or f.subject, None, None, None,
                         'audit', host.host, None,
                         'allowed' if f.allowed else 'leftover', None,
                         str(f)), [f.as_dict()]))
    return out
