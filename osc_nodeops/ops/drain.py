"""Planned maintenance: drain a compute host (S1-S4) and undrain it (S6-S7).

``drain_host`` disables the host's nova-compute service, plans a method for
every server on it (all projects), moves them with the engine
(``ops/engine.py``), verifies each move and re-lists the host.
``undrain_host`` re-enables the service and, on request, moves home every
server whose recorded origin is the host.

The origin lives in the cloud, on the server, as metadata:

``nodeops:drain``
    ``method=<live|cold|live-suspended> at=<UTC time> from=<host>``,
    written just before the move is issued (the intent: a rerun of
    ``drain`` after a crash recognises its own in-flight moves by it and
    picks them up instead of issuing new ones); after the verified move,
    ``migration=<UUID>`` is added.
``nodeops:origin``
    the host the server was drained from, written only after the move.

The project can write its servers' metadata, so undrain trusts only the
admin-only migration record the marker names (``trusted_origin``).
``undrain --migrate-back`` removes both keys from the servers that made it
home.
"""

import dataclasses
import datetime
import logging

from osc_nodeops import errors
from osc_nodeops import timeutil
from osc_nodeops.ops import audit
from osc_nodeops.ops import engine
from osc_nodeops.ops import lease
from osc_nodeops.ops import preflight

LOG = logging.getLogger(__name__)

ORIGIN_KEY = 'nodeops:origin'
MARKER_KEY = 'nodeops:drain'
COMPUTE_BINARY = engine.COMPUTE_BINARY

LIVE_STATES = ('ACTIVE', 'PAUSED')
COLD_STATES = ('SHUTOFF',)
BLOCK_MIGRATION_CHOICES = ('auto', 'yes', 'no')

SKIP_REASONS = {
    'ERROR': 'ERROR: nova cannot move a server in error; repair it or reset '
             'its state first',
    'SHELVED': 'SHELVED: not running on the host; offload it '
               '(server shelve --offload) to free the host',
    'SHELVED_OFFLOADED': 'SHELVED_OFFLOADED: has no host',
    'SUSPENDED': 'SUSPENDED: nova cannot migrate a suspended server '
                 '(--move-suspended resumes, moves and suspends it again)',
    'RESCUE': 'RESCUE: unrescue it first',
    'VERIFY_RESIZE': 'VERIFY_RESIZE: a resize/migration awaits '
                     'confirmation; confirm or revert it first',
    'BUILD': 'BUILD: still being built',
    'MIGRATING': 'MIGRATING: a migration is already in progress',
    'RESIZE': 'RESIZE: a resize is in progress',
    'REBUILD': 'REBUILD: a rebuild is in progress',
    'SOFT_DELETED': 'SOFT_DELETED: restore or delete it first',
}


@dataclasses.dataclass
class Options(object):
    """The request of ``drain`` / ``undrain``: what the command line says."""

    hosts: tuple = ()
    target_host: str | None = None
    block_migration: str = 'auto'
    max_parallel: int = 4
    timeout: float = 600.0
    on_timeout: str = 'abort'
    step_timeout: float | None = None  # each further --on-timeout step
    # 'cold': a live move that failed is cold-migrated
    fallback: str | None = None
    honour_skip: bool = False  # owners' nodeops:maintenance=skip is obeyed
    retries: int = 1
    retry_delay: float = 5.0
    poll_interval: float = 2.0
    exclude: tuple = ()
    move_suspended: bool = False
    dry_run: bool = False
    allow_skipped: bool = False
    allow_partial: bool = False
    reason: str | None = None
    keep_disabled: bool = False
    migrate_back: bool = False
    break_lease: bool = False


@dataclasses.dataclass
class HostReport(object):
    host: str
    items: list
    service_note: str = ''
    left: list = dataclasses.field(default_factory=list)
    interrupted: bool = False
    ok: bool = True
    api_calls: int = 0
    abandoned: bool = False  # second Ctrl-C: left at once
    error: str | None = None
    refused: bool = False  # the pre-flight stopped it: nothing changed
    preflight_notes: list = dataclasses.field(default_factory=list)
    audit: object = None  # ops/audit.py Audit, after the moves


@dataclasses.dataclass
class Report(object):
    """What ``drain`` / ``undrain`` did: one ``HostReport`` per host.

    ``error``: one line, when an error stopped the run after rows were
    gathered (they are kept: the command prints them, then the error).
    """

    hosts: list = dataclasses.field(default_factory=list)
    error: str | None = None

    def __post_init__(self):
        self.error = self.error or next(
            (h.error for h in self.hosts if h.error), None)

    @property
    def items(self):
        return [item for host in self.hosts for item in host.items]

    @property
    def ok(self):
        return not self.error and all(host.ok for host in self.hosts)

    @property
    def interrupted(self):
        return any(host.interrupted for host in self.hosts)


# ------------------------------------------------------------ services

def compute_service(compute, host):
    """The nova-compute service of ``host``; ``errors.NotFound`` if none."""
    return engine.find_compute_service(compute, host, errors.NotFound)


operator_name = lease.operator_name


def default_reason(conn=None, now=None):
    user = operator_name(conn)
    now = now or timeutil.utcnow()
    return 'maintenance: drained by %s at %s (osc-nodeops)' % (
        user, timeutil.api_time(now))


def disable_service(ctx, service, reason=None, default=None):
    """S1.  Returns a note for the operator.  ``service``: read after the
    lease was taken (never a record from before it)."""
    if service.status == 'disabled':
        if reason:
            set_disabled(ctx, service, reason)
            return 'was already disabled; reason set to %r' % reason
        return 'was already disabled (reason kept: %r)' % (
            service.disabled_reason,)
    set_disabled(ctx, service, reason or default)
    return 'disabled (reason: %r)' % (reason or default,)


def set_disabled(ctx, service, reason):
    """Disable the service with ``reason`` (also when it is disabled
    already: openstacksdk sends only the fields that changed on the object
    it is given, and nova refuses a reason without a status, so it is given
    the ID, a fresh object, from 2.53 on)."""
    target = service.id if isinstance(service.id, str) else service
    ctx.api(ctx.compute.disable_service, target, host=service.host,
            binary=service.binary, disabled_reason=reason)


def find_service_quietly(ctx, host):
    try:
        return engine.find_compute_service(ctx.compute, host)
    except LookupError:
        return None


def enable_service(ctx, service):
    """S6."""
    if service.status == 'enabled':
        return 'was already enabled'
    # The SDK updates ``service`` in place from the response (reason None):
    # read the old reason first.
    reason = service.disabled_reason
    ctx.api(ctx.compute.enable_service, service, host=service.host,
            binary=service.binary)
    return 'enabled (was disabled: %r)' % (reason,)


# -------------------------------------------------------------- lease
#
# The host lease lives in ``ops/lease.py`` (one run at a time per host).
# What follows reads an earlier version's lease in a disabled reason; kept
# for ``ops/maintain.py`` until it holds a ``lease.Lease``.

REASON_MAX = lease.REASON_MAX
lease_owner = lease.owner_name
parse_lease = lease.parse_legacy
without_lease = lease.without_legacy
with_lease = lease.with_legacy


def check_lease(service, me, break_lease=False, events=None):
    """Refuse when an earlier version's lease in ``service``'s reason is
    another live run's (``lease.judge``); returns a note when taken over.
    """
    held = lease.legacy_holder(service)
    if held is not None and held.owner == me:
        return None
    return lease.judge(service.host, held, break_lease)


# ------------------------------------------------------------- origin

def marker_value(method, now=None, source=None, migration=None):
    now = now or timeutil.utcnow()
    value = 'method=%s at=%s' % (method, timeutil.api_time(now))
    if source:
        value += ' from=%s' % source
    if migration is not None:
        value += ' migration=%s' % migration
    return value


def parse_marker(value):
    out = {}
    for part in (value or '').split():
        k, _, v = part.partition('=')
        out[k] = v
    return out


def drained_from(server, host):
    """True if our drain of ``host`` marked this server (a move under way
    or done)."""
    md = getattr(server, 'metadata', None) or {}
    if MARKER_KEY not in md:
        return False
    source = parse_marker(md[MARKER_KEY]).get('from')
    return source == host if source else md.get(ORIGIN_KEY) == host


def migration_ref(m):
    """How the marker names a migration: its UUID (2.59+), else its ID."""
    return str(getattr(m, 'uuid', None) or m.id)


def mark_intent(ctx, item, host, method):
    """Before the move: the intent (for a rerun to pick it up), not yet an
    origin (issue 15 item 2: only moves that happened get one)."""
    ctx.api(ctx.compute.set_server_metadata, item.id,
            **{MARKER_KEY: marker_value(method, source=host)})


def record_origin(ctx, item, host, method):
    """After a verified move: the origin, and the migration that moved it
    (undrain trusts the origin only when that admin-only record agrees)."""
    m = item.last_migration
    ctx.api(ctx.compute.set_server_metadata, item.id, **{
        ORIGIN_KEY: host, MARKER_KEY: marker_value(
            method, source=host,
            migration=migration_ref(m) if m is not None else None)})


def clear_origin(ctx, item):
    ctx.api(ctx.compute.delete_server_metadata, item.id,
            [ORIGIN_KEY, MARKER_KEY])


def clear_intent(ctx, item):
    ctx.api(ctx.compute.delete_server_metadata, item.id, [MARKER_KEY])


def trusted_origin(server, host, snap):
    """``(True, migration)`` when an admin-only migration record confirms
    that our drain moved ``server`` away from ``host``; else ``(False,
    why)``.

    ``nodeops:origin`` is server metadata, which the server's project can
    write: it is only a hint.  The marker names the migration of our drain
    (its UUID); that record (from the migrations touching ``host``, which
    only an admin can list) must be of this server, from ``host``, finished,
    to the host the server is on now, and the server's newest move touching
    ``host``.
    """
    md = getattr(server, 'metadata', None) or {}
    marker = parse_marker(md.get(MARKER_KEY))
    ref = marker.get('migration')
    if md.get(ORIGIN_KEY) != host:
        return False, 'origin record names %s' % md.get(ORIGIN_KEY)
    if not ref:
        return False, 'origin record names no migration of a drain'
    records = snap.migrations(server.id)
    found = [m for m in records if migration_ref(m) == ref
             or str(m.id) == ref]
    if not found:
        return False, ('no migration %s of this server from %s' % (ref,
                                                                    host))
    m = found[-1]
    if (m.source_compute != host or m.status not in engine.MIGRATION_DONE
            or m.migration_type not in (None, 'live-migration',
                                        'migration')):
        return False, 'migration %s is not a finished move from %s' % (
            ref, host)
    if records[-1] is not m:
        return False, 'moved again after migration %s' % ref
    if m.dest_compute != server.compute_host:
        return False, 'migration %s went to %s; the server is on %s' % (
            ref, m.dest_compute, server.compute_host)
    return True, m


# Clocks differ between the machine that wrote a lease and nova's.
LEASE_CLOCK_SLACK = datetime.timedelta(minutes=5)


def moved_by_stopped_run(ctx, snap, host, since):
    """The servers the run that was stopped (its lease taken over; it
    started at ``since``) moved away from ``host``: each has our intent
    marker and its newest migration, a finished move from ``host`` since
    then, to where it is now.  One GET per such server, only on a rerun
    that took a lease over.

    Each becomes a row (``engine.MOVED_EARLIER``: done, by that run); one
    the run could not give its origin record (killed between the verified
    move and the record) gets it now."""
    since = since - LEASE_CLOCK_SLACK
    on_host = set(snap.servers)
    items = []
    for srv_id in snap.migrated_server_ids():
        if srv_id in on_host:
            continue
        m = snap.migrations(srv_id)[-1]
        if (m.source_compute != host or m.status not in engine.MIGRATION_DONE
                or m.migration_type not in (None, 'live-migration',
                                            'migration')
                or (timeutil.parse_time(m.created_at) or timeutil.EPOCH)
                < since):
            continue
        srv = ctx.api(ctx.compute.get_server, srv_id)
        if (not drained_from(srv, host)
                or srv.compute_host != m.dest_compute):
            continue
        method = parse_marker((srv.metadata or {}).get(MARKER_KEY)).get(
            'method') or ('live' if m.migration_type == 'live-migration'
                          else 'cold')
        item = engine.PlanItem(srv, action_for(method), source=host)
        item.last_migration = m
        item.destination = m.dest_compute
        item.result = engine.MOVED_EARLIER
        item.message = ('moved by the run that was stopped (migration %s)'
                        % migration_ref(m))
        items.append(item)
        if ORIGIN_KEY in (srv.metadata or {}):
            continue
        try:
            record_origin(ctx, item, host, method)
        except Exception as exc:
            item.message += '; recording the origin failed: %s' % (
                engine.describe(exc))
            ctx.emit('warning', 'recording the origin failed: %s' %
                     engine.describe(exc), item)
            continue
        ctx.emit('resume', 'origin recorded (moved by the run that was '
                 'stopped: migration %s)' % migration_ref(m), item)
    return items


# ------------------------------------------------------------ actions

class _OriginMixin(object):
    name: str   # the Action's name, from the class it is mixed into

    def __init__(self, record_origin_host=None, clear_origin_after=False):
        self.record_origin_host = record_origin_host
        self.clear_origin_after = clear_origin_after

    def _record(self, ctx, item):
        if self.record_origin_host:
            mark_intent(ctx, item, self.record_origin_host, self.name)

    def finished(self, ctx, item):
        if self.record_origin_host:
            record_origin(ctx, item, self.record_origin_host, self.name)
        if self.clear_origin_after:
            clear_origin(ctx, item)


def block_migration_for(ctx, server):
    """``--block-migration auto|yes|no`` → the API's value."""
    choice = ctx.options.get('block_migration', 'auto')
    if choice == 'yes':
        return True
    if choice == 'no':
        return False
    if ctx.features.block_migration_auto:
        return 'auto'
    # Before 2.25: decide from the instance.  A volume-backed server has
    # no local root disk to copy.
    image = getattr(server, 'image', None)
    image_id = image.get('id') if isinstance(image, dict) else image
    return bool(image_id)


class LiveMigrate(_OriginMixin, engine.MigrationAction):
    """Live migration (ACTIVE, PAUSED); migration record 'completed'."""

    name = 'live'
    migration_types = ('live-migration',)
    done_statuses = ('completed',)

    def issue(self, ctx, item):
        self._record(ctx, item)
        ctx.compute.live_migrate_server(
            item.id, host=destination_for(ctx, item, live=True),
            block_migration=block_migration_for(ctx, item.server))

    def fallback(self, ctx, item):
        """The cold fallback, once every live attempt failed: only with
        the operator's ``--fallback cold`` or the owner's policy
        (``item.data['cold_ok']`` says which), only for an ACTIVE server
        (nova cold-migrates no PAUSED one), its state restored."""
        why = item.data.get('cold_ok')
        if not why or type(self) is not LiveMigrate:
            return None
        if item.status_before != 'ACTIVE':
            item.step('no cold fallback: nova cannot cold-migrate a %s '
                      'server' % item.status_before)
            return None
        return (RestoringColdMigrate(
            record_origin_host=self.record_origin_host),
            'cold fallback (%s): cold-migrate, confirm, ACTIVE again' % why)


def destination_for(ctx, item, live):
    """The host a move names: ``--target-host``, else (a retry) another
    candidate than the ones that failed, when the cloud lets a move name a
    host (2.30 live without force, 2.56 cold); else None, the scheduler."""
    if ctx.target_host:
        return ctx.target_host
    host = item.data.get('retry_host')
    if host and (ctx.features.live_host_without_force if live
                 else ctx.features.cold_migrate_host):
        return host
    return None


class ColdMigrate(_OriginMixin, engine.MigrationAction):
    """Cold migration (SHUTOFF); the resize is confirmed automatically."""

    name = 'cold'
    migration_types = ('migration',)
    done_statuses = ('confirmed',)
    confirm_every = 15.0

    def issue(self, ctx, item):
        self._record(ctx, item)
        ctx.compute.migrate_server(item.id,
                                   host=destination_for(ctx, item, False))

    def check_migration(self, ctx, item, snap, m):
        if m.status == 'finished':
            last = item.data.get('confirm_sent')
            if last is not None and snap.taken_at - last < self.confirm_every:
                return engine.Check(engine.PENDING, 'confirming the resize')

            def confirm():
                ctx.compute.confirm_server_resize(item.id)
                item.data['confirm_sent'] = snap.taken_at
            return engine.Check(engine.CALL, 'confirm resize', call=confirm)
        return super(ColdMigrate, self).check_migration(ctx, item, snap, m)


class RestoringColdMigrate(ColdMigrate):
    """A cold migration of a running server, its state restored.

    The cold fallback (``stop_first`` False): nova's migrate of an ACTIVE
    server powers it off, moves it and, once the resize is confirmed,
    runs it again; if it is not ACTIVE then, it is started.  The owner's
    ``stop`` (``stop_first``): shut down cleanly first (nova's stop: ACPI,
    then ``shutdown_timeout``), wait for SHUTOFF, cold-migrate, confirm,
    start it again where it landed."""

    stop_grace = 180.0
    start_grace = 120.0

    def __init__(self, stop_first=False, **kw):
        super(RestoringColdMigrate, self).__init__(**kw)
        self.stop_first = stop_first
        self.name = 'stop-cold' if stop_first else 'cold'

    def issue(self, ctx, item):
        self._record(ctx, item)
        if self.stop_first and item.data.get('phase') is None:
            ctx.compute.stop_server(item.id)
            item.data['phase'] = 'stop'
            return
        self._migrate(ctx, item)

    def _migrate(self, ctx, item):
        ctx.compute.migrate_server(item.id,
                                   host=destination_for(ctx, item, False))
        item.data['phase'] = 'migrate'

    def adopt(self, ctx, item, snap):
        if item.data.get('phase') == 'stop':
            srv = snap.server(item.id)
            return srv is not None and (srv.task_state == 'powering-off'
                                        or srv.status == 'SHUTOFF')
        return super(RestoringColdMigrate, self).adopt(ctx, item, snap)

    def progress(self, ctx, item, snap):
        phase = item.data.get('phase')
        waited = snap.taken_at - (item.issued_at or snap.taken_at)
        if phase == 'stop':
            srv = snap.server(item.id)
            if srv is not None and srv.status == 'SHUTOFF' and \
                    not srv.task_state:
                item.known_migrations = {m.id for m in
                                         snap.migrations(item.id)}
                item.issued_at = snap.taken_at  # the record's grace
                item.step('stopped (owner policy stop)')
                return engine.Check(engine.CALL, 'cold-migrate (stopped)',
                                    call=lambda: self._migrate(ctx, item))
            if waited > self.stop_grace:
                return engine.Check(engine.FATAL, 'did not stop in %ds '
                                    '(status %s)' % (waited, getattr(
                                        srv, 'status', None)))
            return engine.Check(engine.PENDING, 'stopping')
        if phase == 'start':
            srv = ctx.api(ctx.compute.get_server, item.id)
            if srv.status == 'ACTIVE' or waited > self.start_grace:
                return engine.Check(engine.COMPLETE, 'started',
                                    destination=srv.compute_host)
            return engine.Check(engine.PENDING, 'starting again (%s)' %
                                srv.status)
        check = super(RestoringColdMigrate, self).progress(ctx, item, snap)
        if check.state == engine.COMPLETE and phase == 'migrate':
            def start():
                srv = ctx.compute.get_server(item.id)
                item.data['phase'] = 'start'
                if srv.status == 'SHUTOFF' and not srv.task_state:
                    ctx.compute.start_server(item.id)
            return engine.Check(engine.CALL, 'start again', call=start)
        return check

    def verify(self, ctx, item, snap):
        ok, message, dest = super(RestoringColdMigrate, self).verify(
            ctx, item, snap)
        if ok:
            srv = ctx.api(ctx.compute.get_server, item.id)
            if srv.status != 'ACTIVE':
                return (True, 'moved, but status is %s, not ACTIVE' %
                        srv.status, dest)
            item.step('ACTIVE again on %s' % dest)
        return ok, message, dest


class SuspendedLiveMigrate(LiveMigrate):
    """SUSPENDED (opt-in): resume, live-migrate, suspend again."""

    name = 'live-suspended'
    resume_grace = 60.0

    def issue(self, ctx, item):
        self._record(ctx, item)
        if item.data.get('phase') is None:
            ctx.compute.resume_server(item.id)
            item.data['phase'] = 'resume'
        else:  # a retry: the server was resumed already
            self._migrate(ctx, item)

    def _migrate(self, ctx, item):
        ctx.compute.live_migrate_server(
            item.id, host=ctx.target_host,
            block_migration=block_migration_for(ctx, item.server))
        item.data['phase'] = 'migrate'

    @staticmethod
    def _seen(item, snap):
        # On the watched host (drain) or, when the poller watches the
        # destination (undrain), where the server still is.
        return snap.server(item.id) or snap.elsewhere(item.id)

    def adopt(self, ctx, item, snap):
        if item.data.get('phase') == 'resume':
            srv = self._seen(item, snap)
            return srv is not None and (srv.task_state == 'resuming'
                                        or srv.status == 'ACTIVE')
        return super(SuspendedLiveMigrate, self).adopt(ctx, item, snap)

    def progress(self, ctx, item, snap):
        phase = item.data.get('phase')
        if phase == 'resume':
            srv = self._seen(item, snap)
            if srv is not None and srv.status == 'ACTIVE':
                item.known_migrations = {m.id for m in
                                         snap.migrations(item.id)}
                return engine.Check(engine.CALL, 'live-migrate (resumed)',
                                    call=lambda: self._migrate(ctx, item))
            waited = snap.taken_at - (item.issued_at or snap.taken_at)
            if waited > self.resume_grace:
                return engine.Check(engine.FAILED, 'did not resume in %ds' %
                                    waited)
            return engine.Check(engine.PENDING, 'resuming')
        check = super(SuspendedLiveMigrate, self).progress(ctx, item, snap)
        if check.state == engine.COMPLETE and phase == 'migrate':
            def suspend():
                ctx.compute.suspend_server(item.id)
                item.data['phase'] = 'suspend'
            return engine.Check(engine.CALL, 'suspend again', call=suspend)
        return check

    def verify(self, ctx, item, snap):
        ok, message, dest = super(SuspendedLiveMigrate, self).verify(
            ctx, item, snap)
        if ok:
            srv = ctx.api(ctx.compute.get_server, item.id)
            if srv.status != 'SUSPENDED' and srv.task_state != 'suspending':
                return (True, 'moved, but status is %s, not SUSPENDED' %
                        srv.status, dest)
        return ok, message, dest


def action_for(method, record_origin_host=None, clear_origin_after=False):
    if method == 'stop-cold':
        return RestoringColdMigrate(stop_first=True,
                                    record_origin_host=record_origin_host,
                                    clear_origin_after=clear_origin_after)
    cls = {'live': LiveMigrate, 'cold': ColdMigrate,
           'live-suspended': SuspendedLiveMigrate}[method]
    return cls(record_origin_host=record_origin_host,
               clear_origin_after=clear_origin_after)


# ------------------------------------------------------- owner policy
#
# A server's owner may say what maintenance it accepts: server metadata
# ``nodeops:maintenance=VALUE`` or a server tag ``nodeops:maintenance=VALUE``.
# Tenant-writable, so untrusted: exactly one of POLICY_VALUES, else ignored
# (with a warning in the row).  Honoured only within the operator's options:
# ``cold`` allows the cold fallback for that server, ``stop`` makes it
# stop-cold-start (downtime the owner accepts), ``skip`` takes effect only
# with --honour-skip (a tenant cannot block maintenance), ``live`` is the
# default and changes nothing.

POLICY_KEY = 'nodeops:maintenance'
POLICY_VALUES = ('live', 'cold', 'stop', 'skip')


def _shown(value):
    """Tenant text fit for a row: at most 40 characters, escaped."""
    text = str(value)
    return repr(text[:40] + ('...' if len(text) > 40 else ''))


def owner_policy(server):
    """``(value, warning)``: the owner's policy (None when there is none
    or it is not valid; then ``warning`` says why)."""
    found = []
    md = getattr(server, 'metadata', None) or {}
    if POLICY_KEY in md:
        found.append(md[POLICY_KEY])
    for tag in getattr(server, 'tags', None) or ():
        if isinstance(tag, str) and tag.startswith(POLICY_KEY + '='):
            found.append(tag[len(POLICY_KEY) + 1:])
    if not found:
        return None, ''
    bad = [v for v in found if v not in POLICY_VALUES]
    if bad:
        return None, ('owner policy %s=%s ignored: not one of %s' % (
            POLICY_KEY, _shown(bad[0]), ', '.join(POLICY_VALUES)))
    if len(set(found)) > 1:
        return None, ('owner policy ignored: its tag and metadata disagree '
                      '(%s)' % ', '.join(sorted(set(found))))
    return found[0], ''


def apply_policy(ctx, item, opts):
    """The owner's policy onto a planned item, within the operator's
    options (see above); the operator's ``--fallback cold`` applies to
    every live move."""
    value, warning = owner_policy(item.server)
    item.policy = value
    if warning:
        item.policy_note = warning
        ctx.emit('warning', warning, item)
    if item.action is None or item.adopt:
        return
    live = item.action.name == 'live' and item.status_before == 'ACTIVE'
    if value == 'skip':
        if opts.honour_skip:
            item.action = None
            item.reason = ('owner asked to skip (%s=skip); honoured '
                           '(--honour-skip)' % POLICY_KEY)
            return
        item.policy_note = ('owner asked to skip (%s=skip); moved anyway: '
                            'the operator did not give --honour-skip' %
                            POLICY_KEY)
    elif value == 'stop' and live and not (
            ctx.target_host and not ctx.features.cold_migrate_host):
        item.action = action_for('stop-cold',
                                 record_origin_host=item.source)
        item.policy_note = ('owner policy stop: shut down, cold-migrate, '
                            'start again')
    elif value == 'cold' and live:
        item.data['cold_ok'] = 'owner policy %s=cold' % POLICY_KEY
        item.policy_note = 'owner policy cold: a cold fallback is allowed'
    elif value in ('cold', 'stop'):
        item.policy_note = 'owner policy %s: nothing to change for a %s ' \
            'server' % (value, item.status_before)
    if getattr(opts, 'fallback', None) == 'cold' and live and \
            item.action.name == 'live':
        item.data['cold_ok'] = '--fallback cold'


def plan_ladder(item, opts, ladder):
    """What the drain will do with a move that does not finish, as the
    dry run shows it (``item.ladder``)."""
    if item.action is None:
        item.ladder = []
        return
    name = item.action.name
    if name == 'stop-cold':
        item.ladder = ['stop', 'cold-migrate', 'confirm', 'start']
        return
    if name == 'cold':
        item.ladder = ['cold-migrate', 'confirm']
        return
    steps = [name]
    if name in ('live', 'live-suspended'):
        step = opts.step_timeout if opts.step_timeout else max(
            60.0, opts.timeout / 2)
        for n, mode in enumerate(ladder):
            steps.append('%s after %ds' % (mode, opts.timeout) if n == 0
                         else '%s after %ds more' % (mode, step))
        if ladder[-1] != 'leave':
            steps.append('left running after %ds more' % step)
    if opts.retries:
        steps.append('retry %d time(s)%s' % (
            opts.retries, ' on another host' if name != 'live-suspended'
            and not opts.target_host else ''))
    if item.data.get('cold_ok'):
        steps.append('cold fallback (%s), ACTIVE again' %
                     item.data['cold_ok'])
    item.ladder = steps


# ----------------------------------------------------------- planning

def _method_for(server, opts, features, target):
    """(method, None) or (None, skip reason) for a server's status."""
    status = server.status
    if status in LIVE_STATES:
        method = 'live'
    elif status in COLD_STATES:
        method = 'cold'
    elif status == 'SUSPENDED' and opts.move_suspended:
        method = 'live-suspended'
    else:
        return None, SKIP_REASONS.get(
            status, '%s: nova cannot move a server in this state' % status)
    if target and method != 'cold' and not features.live_host_without_force:
        return None, ('a live migration to a named host needs compute API '
                      '2.30 (the cloud offers %s)' % features.effective)
    if target and method == 'cold' and not features.cold_migrate_host:
        return None, ('a cold migration to a named host needs compute API '
                      '2.56 (the cloud offers %s)' % features.effective)
    return method, None


def _excluded(server, exclude):
    return server.id in exclude or (server.name and server.name in exclude)


def plan_drain(ctx, snap, opts):
    """S2: one PlanItem per server on ``snap.host`` (and resumed moves)."""
    host = snap.host
    items = []
    for srv in sorted(snap.servers.values(),
                      key=lambda s: ((s.name or ''), s.id)):
        if _excluded(srv, opts.exclude):
            items.append(engine.PlanItem(srv, reason='excluded by --exclude'))
            continue
        if srv.task_state:
            ours = drained_from(srv, host)
            method = parse_marker((srv.metadata or {}).get(MARKER_KEY)).get(
                'method')
            if ours and method in ('live', 'cold', 'live-suspended',
                                   'stop-cold'):
                action = action_for(method, record_origin_host=host)
                item = engine.PlanItem(srv, action, adopt=True)
                if method in ('live-suspended', 'stop-cold'):
                    item.data['phase'] = 'migrate'
                if action.adopt_in_progress(item, snap):
                    items.append(item)
                    continue
            items.append(engine.PlanItem(
                srv, reason='task_state %s: busy (not started by this '
                'tool)' % srv.task_state if not ours else
                'task_state %s and no migration in progress' % srv.task_state))
            continue
        method, reason = _method_for(srv, opts, ctx.features, ctx.target_host)
        if method == 'cold' and drained_from(srv, host) and parse_marker(
                (srv.metadata or {}).get(MARKER_KEY)).get(
                    'method') == 'stop-cold':
            # Stopped by a run that died before it moved it: move it and
            # start it again, as that run would have.
            method = 'stop-cold'
        if method is None:
            item = engine.PlanItem(srv, reason=reason)
        else:
            item = engine.PlanItem(srv, action_for(method,
                                                   record_origin_host=host))
            if method == 'stop-cold':
                item.data['phase'] = 'stopped'
        apply_policy(ctx, item, opts)
        plan_ladder(item, opts, engine.parse_ladder(opts.on_timeout))
        items.append(item)
    # Resume: moves of ours whose server already points at the destination
    # but whose migration is not final: a cold migration that finished
    # (VERIFY_RESIZE) but was never confirmed because the run died, or a
    # move caught between the host change and the record's last update.
    seen = set(snap.servers)
    for srv_id in snap.migrated_server_ids():
        if srv_id in seen:
            continue
        for m in reversed(snap.migrations(srv_id)):
            if (m.source_compute != host or m.status in
                    engine.MIGRATION_FINAL or m.migration_type not in (
                        None, 'migration', 'live-migration')):
                continue
            srv = ctx.api(ctx.compute.get_server, srv_id)
            if drained_from(srv, host):
                method = ('live' if m.migration_type == 'live-migration'
                          else 'cold')
                item = engine.PlanItem(srv, action_for(
                    method, record_origin_host=host), source=host,
                    adopt=True, migration_id=m.id)
                item.last_migration = m
                items.append(item)
                seen.add(srv_id)
            break
    return items


class UndrainPoller(engine.HostPoller):
    """The undrain host's poller, plus the hosts where servers being
    resumed before their move home still are (``snap.elsewhere``): a resume
    is seen there, not on the host being watched."""

    def __init__(self, compute, host, features=None, since=None):
        super(UndrainPoller, self).__init__(compute, host, features,
                                            since=since)
        self.items: tuple = ()

    def other_hosts(self, migrations):
        return {i.source for i in self.items
                if i.data.get('phase') == 'resume' and i.source
                and i.result is None}


def plan_undrain(ctx, snap, servers, opts):
    """S7: one PlanItem per server whose origin is ``snap.host``."""
    host = snap.host
    items = []
    for srv in sorted(servers, key=lambda s: ((s.name or ''), s.id)):
        if srv.compute_host == host and not srv.task_state:
            item = engine.PlanItem(srv, reason='already on %s' % host,
                                   success_if_skipped=True)
            item.data['home'] = True  # its record is cleared
            items.append(item)
            continue
        if _excluded(srv, opts.exclude):
            items.append(engine.PlanItem(srv, reason='excluded by --exclude'))
            continue
        if srv.task_state:
            m = snap.in_progress(srv.id)
            if m is not None and m.dest_compute == host:
                method = ('live' if m.migration_type in
                          (None, 'live-migration') else 'cold')
                item = engine.PlanItem(srv, action_for(
                    method, clear_origin_after=True), adopt=True,
                    migration_id=m.id, source=m.source_compute)
                item.last_migration = m
                items.append(item)
            else:
                items.append(engine.PlanItem(
                    srv, reason='task_state %s: busy' % srv.task_state))
            continue
        trusted, why = trusted_origin(srv, host, snap)
        if not trusted:
            # Not a failure (issue 15 item 2): a stale or forged record
            # names a move that did not happen, so nothing is to be undone.
            items.append(engine.PlanItem(
                srv, reason='not moved: %s (the origin metadata alone is '
                'not trusted: the server\'s project can write it)' % why,
                success_if_skipped=True))
            continue
        method, reason = _method_for(srv, opts, ctx.features, host)
        if method is None:
            items.append(engine.PlanItem(srv, reason=reason))
        else:
            items.append(engine.PlanItem(
                srv, action_for(method, clear_origin_after=True)))
    return items


# -------------------------------------------------------------- blame
#
# Each row says whose problem it shows (issue 12 item 6): ``pre-existing``
# (the server was ERROR, locked, busy or migrating before the drain, or a
# pre-flight reason that was there before stopped the move), ``move`` (the
# drain's move failed: nova's fault and the instance action's events say
# why) or ``none`` (nothing went wrong, or the operator chose the skip).

BLAME_PRE = 'pre-existing'
BLAME_MOVE = 'move'
BLAME_NONE = 'none'

MOVE_ACTIONS = ('live-migration', 'live_migration', 'migrate', 'resize',
                'stop', 'start')


def pre_existing(item):
    """What was wrong with the server before the drain touched it."""
    srv = item.server
    found = []
    if item.status_before == 'ERROR':
        found.append('status ERROR before the drain')
    if getattr(srv, 'is_locked', False):
        found.append('locked before the drain')
    if item.status_before in ('MIGRATING', 'RESIZE', 'VERIFY_RESIZE'):
        found.append('already %s before the drain' % item.status_before)
    task = getattr(srv, 'task_state', None)
    if task and not item.adopt:
        found.append('task_state %s before the drain' % task)
    return found


def blame(item, dry_run=False):
    """``(blame, detail)`` of one row, without API calls (a failed move
    gets its evidence from ``move_evidence``)."""
    if item.ok or (dry_run and item.action is not None
                   and item.fits is not False):
        return BLAME_NONE, ''
    before = pre_existing(item)
    if before:
        return BLAME_PRE, '; '.join(before)
    if item.action is not None and item.attempts and item.result in (
            engine.FAILED, engine.TIMEOUT, engine.INTERRUPTED) or (
                item.action is not None and item.steps):
        return BLAME_MOVE, item.message or ''
    if item.action is None:
        if item.reason.startswith(('excluded by', 'owner asked to skip')):
            return BLAME_NONE, item.reason
        reasons = [r for r in list(item.blockers) + (
            [item.capacity] if item.capacity is not None else [])
            if r.blocks and r.pre_existing]
        return BLAME_PRE, item.reason or '; '.join(map(str, reasons))
    return BLAME_NONE, item.message or ''


def move_evidence(ctx, item):
    """Why nova says the move failed: the server's fault (nova shows it
    for a server in ERROR) and the events of its newest move action
    (instance actions).  A few GETs, only for the rows whose move failed;
    a look that fails is said, not raised."""
    parts = []
    try:
        srv = ctx.api(ctx.compute.get_server, item.id)
        fault = getattr(srv, 'fault', None) or {}
        if fault.get('message'):
            parts.append('nova fault: %s%s' % (
                ' '.join(str(fault['message']).split())[:200],
                ' (code %s)' % fault['code'] if fault.get('code') else ''))
    except Exception as exc:
        parts.append('server not read: %s' % engine.describe(exc))
    try:
        actions = [a for a in ctx.api(lambda: list(
            ctx.compute.server_actions(item.id)))
            if getattr(a, 'action', None) in MOVE_ACTIONS]
        actions.sort(key=lambda a: str(getattr(a, 'start_time', '') or ''))
        if actions:
            newest = actions[-1]
            full = ctx.api(ctx.compute.get_server_action,
                           newest.request_id, item.id)
            events = ', '.join('%s %s' % (
                e.get('event') if isinstance(e, dict) else
                getattr(e, 'event', None),
                e.get('result') if isinstance(e, dict) else
                getattr(e, 'result', None))
                for e in (getattr(full, 'events', None) or ()))
            parts.append('instance action %s %s%s: %s' % (
                newest.action, newest.request_id,
                (' (%s)' % newest.message) if getattr(
                    newest, 'message', None) else '',
                events or 'no events'))
        else:
            parts.append('no move in the instance actions')
    except Exception as exc:
        parts.append('instance actions not read: %s' %
                     engine.describe(exc))
    return '; '.join(parts)


def assign_blame(ctx, items, dry_run=False):
    for item in items:
        item.blame, item.blame_detail = blame(item, dry_run)
        if item.blame == BLAME_MOVE and not dry_run:
            evidence = move_evidence(ctx, item)
            item.blame_detail = '; '.join(
                p for p in (item.blame_detail, evidence) if p)
        if item.blame != BLAME_NONE:
            ctx.emit('blame', '%s: %s' % (item.blame, item.blame_detail),
                     item)


# ---------------------------------------------------------- execution

def _context(compute, host, features, opts, events, target):
    return engine.Context(
        compute, host, features=features, target_host=target,
        options={'block_migration': opts.block_migration}, events=events)


def validate(compute, hosts, opts):
    """Check every input before changing anything; return the services.

    ``errors.UsageError`` for arguments that do not go together,
    ``errors.NotFound`` for a host without nova-compute, ``errors.Refused``
    for a target the scheduler would refuse.
    """
    if opts.block_migration not in BLOCK_MIGRATION_CHOICES:
        raise errors.UsageError('--block-migration must be one of %s' %
                                ', '.join(BLOCK_MIGRATION_CHOICES))
    try:
        engine.parse_ladder(opts.on_timeout)
    except ValueError as exc:
        raise errors.UsageError(str(exc))
    if opts.step_timeout is not None and not opts.step_timeout > 0:
        raise errors.UsageError('--step-timeout must be positive')
    if getattr(opts, 'fallback', None) not in (None, 'none', 'cold'):
        raise errors.UsageError('--fallback must be cold or none')
    if opts.max_parallel < 1:
        raise errors.UsageError('--max-parallel must be at least 1')
    if not opts.timeout > 0:
        raise errors.UsageError('--timeout must be positive')
    if opts.retries < 0:
        raise errors.UsageError('--retries must be 0 or more')
    if not all(host and host.strip() for host in hosts):
        raise errors.UsageError('a host name is empty')
    if len(set(hosts)) != len(hosts):
        raise errors.UsageError('a host is named twice')
    if opts.target_host and opts.target_host in hosts:
        raise errors.UsageError('--target-host %s is one of the hosts being '
                                'drained' % opts.target_host)
    services = {}
    for host in hosts:
        services[host] = compute_service(compute, host)
    if opts.target_host:
        target = compute_service(compute, opts.target_host)
        if target.status == 'disabled':
            raise errors.Refused('--target-host %s is disabled: the '
                                 'scheduler would refuse every move' %
                                 opts.target_host)
    return services


def check_excludes(compute, hosts, exclude):
    """Every ``--exclude`` must name a server (name or ID) on a host."""
    if not exclude:
        return
    names = set()
    for host in hosts:
        for srv in engine.call_with_retry(lambda: list(compute.servers(
                details=True, all_projects=True, compute_host=host))):
            names.add(srv.id)
            if srv.name:
                names.add(srv.name)
    unknown = [e for e in exclude if e not in names]
    if unknown:
        raise errors.NotFound('--exclude %s: no such server on %s' % (
            unknown[0], ', '.join(hosts)))


def drain(conn, request, events=None, executor_kwargs=None):
    """``compute node drain``: validate, then S1-S4 for every host.

    Returns a :class:`Report`.  Raises an ``errors.NodeOpsError`` before
    anything is changed when the request cannot be done.
    """
    compute = conn.compute
    hosts = list(request.hosts)
    if not hosts:
        raise errors.UsageError('name at least one host')
    services = validate(compute, hosts, request)
    check_excludes(compute, hosts, request.exclude)
    features = engine.Features.from_proxy(compute)
    # For -v / --debug only (OSC's console shows INFO from -v on).
    LOG.info('compute API microversion %s (server max %s)',
             features.effective, features.server_max)
    reports: list = []
    try:
        drain_hosts(compute, hosts, services, request, features=features,
                    events=events, reason_default=default_reason(conn),
                    executor_kwargs=executor_kwargs, reports=reports,
                    conn=conn)
    except Exception as exc:
        if not reports:
            raise
        # A later host failed: keep the rows of the ones before.
        LOG.debug('drain stopped', exc_info=True)
        return Report(reports, error='%s: %s' % (
            hosts[len(reports)], errors.one_line(exc)))
    return Report(reports)


def undrain(conn, request, events=None, executor_kwargs=None):
    """``compute node undrain``: S6 (and S7 with ``--migrate-back``).

    Returns a :class:`Report` of the one host.
    """
    if request.keep_disabled and request.migrate_back:
        raise errors.UsageError(
            '--keep-disabled and --migrate-back cannot be combined: the '
            'scheduler does not place servers on a disabled host')
    if request.keep_disabled:
        raise errors.UsageError(
            '--keep-disabled without --migrate-back would do nothing (and '
            'cannot go with it): to leave the host disabled, do not run '
            'undrain')
    if len(request.hosts) != 1:
        raise errors.UsageError('undrain takes exactly one host')
    host = request.hosts[0]
    compute = conn.compute
    services = validate(compute, [host], request)
    features = engine.Features.from_proxy(compute)
    return Report([undrain_host(compute, host, services[host], request,
                                features=features, events=events,
                                executor_kwargs=executor_kwargs)])


def _planned_destination(items, destination):
    """A dry run's rows name the destination where it is known (undrain:
    the host; drain: --target-host), not None."""
    if destination:
        for item in items:
            if item.action is not None and item.destination is None:
                item.destination = destination


def drain_host(compute, host, service, opts, features=None, events=None,
               reason_default=None, executor_kwargs=None,
               taken_over_since=None, conn=None, draining=(), held=None):
    """S1-S4 for one host.  Returns a ``HostReport``.

    ``held``: a ``lease.Lease`` of ``host`` the caller holds (and releases);
    else the drain takes one and releases it at its end (left to expire
    when the run ends in an exception or a second Ctrl-C).
    ``taken_over_since``: when the run whose lease was taken over started
    (else from ``held``).  ``conn`` (a Connection):
    run the pre-flight (blockers, capacity) on the plan; ``draining``:
    every host of this run (not candidates)."""
    features = features or engine.Features.from_proxy(compute)
    ctx = _context(compute, host, features, opts, events, opts.target_host)
    ctx.preflight = (conn, tuple(draining) or (host,))
    if opts.dry_run:
        return _drain_host(ctx, compute, host, service, opts, features,
                           'dry run: service left %s' % service.status,
                           executor_kwargs)
    own = held is None
    if own:
        held = lease.Lease(compute, host, kind='drain', owner=lease_owner(),
                           break_lease=getattr(opts, 'break_lease', False),
                           events=events).acquire()
    if taken_over_since is None and held.took is not None:
        taken_over_since = timeutil.parse_time(held.took.since)
    abandoned = True  # an exception: leave the lease to expire
    try:
        held.check()
        # Read after the lease is ours: what another run did before counts.
        service = compute_service(compute, host)
        note = disable_service(ctx, service, opts.reason,
                               reason_default or default_reason())
        ctx.emit('service', '%s nova-compute %s' % (host, note))
        report = _drain_host(ctx, compute, host, service, opts, features,
                             note, dict(executor_kwargs or {},
                                        guard=held.check),
                             taken_over_since)
        abandoned = report.abandoned
        return report
    finally:
        if own:
            end_lease(ctx, held, abandoned)


def end_lease(ctx, held, abandoned=False):
    """Release ``held`` (or, ``abandoned``, leave it to expire); a failed
    release is a warning (the entry expires)."""
    if abandoned:
        held.abandon()
        return
    try:
        held.release()
    except Exception as exc:
        LOG.debug('release failed', exc_info=True)
        ctx.emit('warning', '%s: could not release the lease (%s); it '
                 'expires at %s' % (held.host, engine.describe(exc),
                                    held.expires_text()))


def _drain_host(ctx, compute, host, service, opts, features, note,
                executor_kwargs, taken_over_since=None):
    since = timeutil.utcnow() - datetime.timedelta(hours=1)
    poller = engine.HostPoller(compute, host, features, since=since)
    snap = engine.call_with_retry(lambda: poller.snapshot(full=True))
    items = plan_drain(ctx, snap, opts)
    earlier = []
    if taken_over_since is not None and not opts.dry_run:
        planned = {i.id for i in items}
        earlier = [i for i in moved_by_stopped_run(ctx, snap, host,
                                                   taken_over_since)
                   if i.id not in planned]
    misfits, notes = run_preflight(ctx, host, items, opts, features)
    if misfits and (opts.allow_partial or not opts.dry_run):
        # A real run after the pre-pass (drain_hosts) said it fits: the
        # cloud changed meanwhile; what no longer fits stays.
        preflight.partial(misfits)
    moving = sum(1 for i in items if i.action)
    ctx.emit('plan', '%s: %d server(s), %d to move, %d skipped' % (
        host, len(items), moving, len(items) - moving))
    report = HostReport(host, items, service_note=note,
                        preflight_notes=notes)
    if opts.dry_run:
        engine.settle(items, True)
        _planned_destination(items, opts.target_host)
        assign_blame(ctx, items, dry_run=True)
        report.ok = all((i.action and i.fits is not False)
                        or opts.allow_skipped for i in items)
        report.api_calls = poller.calls
        return report
    executor = engine.Executor.from_options(ctx, poller, opts,
                                            **(executor_kwargs or {}))
    executor.run(items, initial_snapshot=snap)
    items.extend(earlier)   # rows, not work: the stopped run did them
    engine.settle(items, False)
    report.interrupted = executor.interrupted
    report.error = executor.stopped_by
    if executor.abandon:
        # A second Ctrl-C: leave now with what is known (no re-list).
        report.abandoned = True
        report.api_calls = poller.calls
        report.ok = False
        return report
    # S4: re-list the host.
    try:
        remaining = engine.call_with_retry(poller.list_servers)
    except Exception as exc:
        # The moves are done and verified one by one: keep their rows.
        LOG.debug('re-list failed', exc_info=True)
        report.api_calls = poller.calls
        report.ok = False
        report.error = '%s: listing the host after the moves failed: %s' % (
            host, errors.one_line(exc))
        return report
    known = {i.id: i for i in items}
    for srv in remaining:
        if srv.id not in known:
            item = engine.PlanItem(srv, reason='appeared on %s during the '
                                   'drain' % host)
            item.result = 'left'
            items.append(item)
            report.left.append(item)
        else:
            report.left.append(known[srv.id])
    # Issue 15 item 2: a move that did not happen leaves no record.
    left_ids = {srv.id for srv in remaining}
    for item in items:
        if item.action is not None and item.result == engine.FAILED \
                and item.id in left_ids:
            try:
                clear_intent(ctx, item)
            except Exception as exc:
                LOG.debug('clearing the marker failed', exc_info=True)
                item.message += '; clearing %s failed: %s' % (
                    MARKER_KEY, engine.describe(exc))
    assign_blame(ctx, items)
    report.api_calls = poller.calls
    everything_done = all(i.ok or (i.action is None and opts.allow_skipped
                                   and i.result == engine.SKIPPED)
                          for i in items)
    left_ok = all(i.action is None and i.result == engine.SKIPPED
                  and opts.allow_skipped for i in report.left)
    report.ok = (everything_done and left_ok and not report.interrupted)
    if not report.interrupted:
        # Issue 12 item 5: drained only when nova and placement agree.
        audit.after_drain(ctx, report, remaining, opts)
    ctx.emit('done', '%s: %d moved, %d left on the host' % (
        host, sum(1 for i in items if i.ok and i.action), len(remaining)))
    return report


def drain_hosts(compute, hosts, services, opts, features=None, events=None,
                reason_default=None, executor_kwargs=None, reports=None,
                conn=None):
    """Drain several hosts one after the other (rolling).

    Every host is disabled first (S1), so the scheduler does not send the
    servers of the first host to the next one.  Stops after a host whose
    drain was interrupted or ended in an error.  Returns the ``HostReport``
    list (``reports``, appended to as each host is done, so that the
    caller keeps them when a later host raises).

    With ``conn``, a pre-flight first (nothing changed): when a server of
    any host would not fit the rest of the cloud, the drain refuses (the
    reports say which, ``refused``) unless ``opts.allow_partial``.
    """
    features = features or engine.Features.from_proxy(compute)
    reason_default = reason_default or default_reason()
    if conn is not None and not opts.dry_run and not opts.allow_partial:
        refused = refuse_if_misfits(compute, hosts, services, opts,
                                    features, events, conn)
        if refused:
            if reports is not None:
                reports.extend(refused)
            return refused
    reports = [] if reports is None else reports
    if opts.dry_run:  # no lease, nothing changed
        for host in hosts:
            reports.append(drain_host(
                compute, host, services[host], opts, features=features,
                events=events, executor_kwargs=executor_kwargs, conn=conn,
                draining=hosts))
        return reports
    held = {}
    current = None  # the host whose drain raised: its lease is left
    try:
        for host in hosts:  # every lease before anything changes
            held[host] = lease.Lease(
                compute, host, kind='drain', owner=lease_owner(),
                break_lease=getattr(opts, 'break_lease', False),
                events=events).acquire()
        for host in hosts[1:]:
            held[host].check()
            # The event carries its host (``--events`` readers filter by it)
            ctx = _context(compute, host, features, opts, events, None)
            note = disable_service(ctx, compute_service(compute, host),
                                   opts.reason, reason_default)
            ctx.emit('service', '%s nova-compute %s' % (host, note))
        for host in hosts:
            current = host
            report = drain_host(compute, host, services[host], opts,
                                features=features, events=events,
                                reason_default=reason_default,
                                executor_kwargs=executor_kwargs, conn=conn,
                                draining=hosts, held=held[host])
            current = None
            reports.append(report)
            end_lease(_context(compute, host, features, opts, events, None),
                      held.pop(host), report.abandoned)
            if report.interrupted or report.error:
                break
    finally:
        for host, rest in held.items():  # not reached: released
            end_lease(_context(compute, host, features, opts, events, None),
                      rest, abandoned=host == current)
    return reports


def run_preflight(ctx, host, items, opts, features, pool=None):
    """Blockers and capacity onto ``items`` (``ops/preflight.py``).

    Returns ``(misfits, notes)``; nothing when the drain has no
    connection for it (``ctx.preflight`` unset)."""
    conn, draining = getattr(ctx, 'preflight', (None, ()))
    if conn is None:
        return [], []
    servers = [i.server for i in items]
    cloud = preflight.gather(
        conn, host, servers, features=features, draining=draining,
        target_host=opts.target_host, block_migration=opts.block_migration)
    if pool is not None and cloud.hosts is not None:
        if not pool:
            pool.extend(cloud.hosts)
        cloud.hosts = pool
    misfits = preflight.apply(items, cloud, target_host=opts.target_host,
                              shared=pool is not None)
    for item in items:
        item.candidates = preflight.candidates_for(item, cloud)
    for text in cloud.notes:
        ctx.emit('preflight', '%s: %s' % (host, text))
    for item in items:
        for r in item.blockers:
            ctx.emit('preflight', '%s%s' % (r, ' [blocks %s]' % '+'.join(
                r.blocks) if r.blocks else ''), item=item)
        if item.fits is False:
            ctx.emit('preflight', str(item.capacity), item=item)
    return misfits, cloud.notes


def refuse_if_misfits(compute, hosts, services, opts, features, events,
                      conn):
    """The pre-pass of a real drain: plan every host as a dry run would,
    packing all of them onto one pool.  Returns the reports (refused,
    nothing changed) when something would not fit, else None."""
    plan_opts = dataclasses.replace(opts, dry_run=True)
    pool: list = []
    reports: list = []
    misfit = 0
    for host in hosts:
        ctx = _context(compute, host, features, plan_opts, events,
                       opts.target_host)
        ctx.preflight = (conn, tuple(hosts))
        poller = engine.HostPoller(compute, host, features)
        try:
            snap = engine.call_with_retry(
                lambda: poller.snapshot(full=True))
            items = plan_drain(ctx, snap, plan_opts)
            misfits, notes = run_preflight(ctx, host, items, plan_opts,
                                           features, pool=pool)
        except Exception as exc:
            # The drain of that host meets (and reports) it in its turn;
            # the hosts before it are still drained.
            LOG.debug('pre-flight failed', exc_info=True)
            ctx.emit('warning', '%s: pre-flight not done (%s)' % (
                host, errors.one_line(exc)))
            continue
        misfit += len(misfits)
        engine.settle(items, True)
        reports.append(HostReport(host, items, preflight_notes=notes,
                                  api_calls=poller.calls))
    if not misfit:
        return None
    for report in reports:
        report.ok = False
        report.refused = True
        report.service_note = (
            'refused: %d server(s) would not fit the rest of the cloud; '
            'nothing changed (--allow-partial moves what fits)' % misfit)
        for item in report.items:
            if item.action is not None:
                item.result = engine.NOT_STARTED
            if item.fits is False:
                item.message = str(item.capacity)
    ctx.emit('refused', reports[0].service_note)
    return reports


def list_drained_from(compute, host):
    """Every server (all projects) whose recorded origin is ``host``."""
    return [s for s in engine.call_with_retry(
        lambda: list(compute.servers(details=True, all_projects=True)))
        if (s.metadata or {}).get(ORIGIN_KEY) == host]


def undrain_host(compute, host, service, opts, features=None, events=None,
                 executor_kwargs=None, held=None):
    """S6 (and S7 with ``opts.migrate_back``) for one host.

    The host's lease is taken before the enable and released after the
    last move home (``held``: one the caller holds and releases)."""
    features = features or engine.Features.from_proxy(compute)
    ctx = _context(compute, host, features, opts, events, host)
    servers = []
    if opts.migrate_back:
        servers = list_drained_from(compute, host)
        names = {s.id for s in servers} | {s.name for s in servers}
        unknown = [e for e in opts.exclude if e not in names]
        if unknown:
            raise errors.NotFound('--exclude %s: no server recorded as '
                                  'drained from %s has that name or ID' % (
                                      unknown[0], host))
    elif opts.exclude:
        raise errors.UsageError('--exclude only makes sense with '
                                '--migrate-back')
    if opts.dry_run:
        return _undrain_host(ctx, compute, host, service, opts, features,
                             servers, executor_kwargs, None)
    own = held is None
    if own:
        held = lease.Lease(compute, host, kind='undrain', owner=lease_owner(),
                           break_lease=getattr(opts, 'break_lease', False),
                           events=events).acquire()
    abandoned = True
    try:
        report = _undrain_host(ctx, compute, host, service, opts, features,
                               servers, executor_kwargs, held)
        abandoned = report.abandoned
        return report
    finally:
        if own:  # held through the moves home, released at the end
            end_lease(ctx, held, abandoned)


def _undrain_host(ctx, compute, host, service, opts, features, servers,
                  executor_kwargs, held):
    if held is not None:
        held.check()
        # Read after the lease is ours: what another run did before counts.
        service = compute_service(compute, host)
    if opts.dry_run:
        note = 'dry run: service left %s' % service.status
    elif opts.keep_disabled:
        note = 'kept %s (--keep-disabled)' % service.status
    else:
        note = enable_service(ctx, service)
    ctx.emit('service', '%s nova-compute %s' % (host, note))
    report = HostReport(host, [], service_note=note)
    if not opts.migrate_back:
        return report
    since = timeutil.utcnow() - datetime.timedelta(hours=1)
    poller = UndrainPoller(compute, host, features, since=since)
    snap = engine.call_with_retry(lambda: poller.snapshot(full=True))
    items = plan_undrain(ctx, snap, servers, opts)
    poller.items = items
    report.items = items
    ctx.emit('plan', '%s: %d server(s) recorded as from here, %d to move '
             'back' % (host, len(items), sum(1 for i in items if i.action)))
    if opts.dry_run:
        engine.settle(items, True)
        _planned_destination(items, host)
        report.ok = all(i.action or i.success_if_skipped or opts.allow_skipped
                        for i in items)
        return report
    for item in items:
        if item.action is None and item.data.get('home'):
            try:
                clear_origin(ctx, item)
                item.message = 'already on %s; origin record cleared' % host
            except Exception as exc:
                item.message = ('already on %s; clearing the origin record '
                                'failed: %s' % (host, engine.describe(exc)))
    executor = engine.Executor.from_options(
        ctx, poller, opts, **dict(executor_kwargs or {}, guard=held.check))
    executor.run(items, initial_snapshot=snap)
    engine.settle(items, False)
    report.interrupted = executor.interrupted
    report.error = executor.stopped_by
    report.abandoned = executor.abandon
    report.api_calls = poller.calls
    report.ok = not report.error and not report.interrupted and all(
        i.ok or (i.action is None and opts.allow_skipped) for i in items)
    return report
