"""Plan, execute, poll and verify operations on the servers of one host.

The machinery behind ``compute node drain`` / ``undrain`` and ``server
recover-all``: ``PlanItem`` (a server and its ``Action``), ``HostPoller``
(one host-wide ``Snapshot`` per poll: migrations, then servers), the
bounded-parallel ``Executor`` (timeouts, retries, transient faults, SIGINT)
and ``Features`` (the compute microversions both sides speak).  No cliff
here; it reports through an ``events`` callback.  How the pieces fit, and
how to write an action: doc/source/contributor/architecture.rst.
"""

import collections
import dataclasses
import logging
import signal
import threading
import time
import typing
from concurrent import futures

from openstack import utils as sdk_utils

from osc_nodeops import errors
from osc_nodeops import timeutil
from osc_nodeops.timeutil import parse_time  # noqa: F401 (re-exported)
from osc_nodeops.timeutil import utcnow  # noqa: F401 (re-exported)

LOG = logging.getLogger(__name__)

# Results
PLANNED = 'planned'
SKIPPED = 'skipped'
FAILED = 'failed'
TIMEOUT = 'timeout'
NOT_STARTED = 'not-started'
INTERRUPTED = 'interrupted'
# A move a rerun found done by the run that was stopped (its intent marker
# and the finished migration say so): done, not by this run.
MOVED_EARLIER = 'moved-earlier'

# Check states
PENDING = 'pending'
COMPLETE = 'complete'
CALL = 'call'
FATAL = 'fatal'
# (FAILED is shared with results)

# Item states (executor bookkeeping)
_QUEUED = 'queued'
_ISSUING = 'issuing'
_RUNNING = 'running'
_UNSURE = 'unsure'
_GRACE = 'grace'
_FINISHED = 'finished'

ON_TIMEOUT_CHOICES = ('abort', 'force-complete', 'leave')


def parse_ladder(value):
    """``--on-timeout``: one step or a comma-separated sequence (the
    escalation ladder), as a tuple in order.

    The first step runs when ``--timeout`` has passed, each further one
    ``--step-timeout`` after the one before; ``leave`` (stop waiting, the
    migration left running) only as the last step.  ``ValueError`` with
    one line for anything else."""
    if isinstance(value, (list, tuple)):
        steps = tuple(value)
    else:
        steps = tuple(s.strip() for s in str(value or '').split(','))
    bad = [s for s in steps if s not in ON_TIMEOUT_CHOICES]
    if not steps or bad:
        raise ValueError('--on-timeout: %r is not a step (one of %s, or a '
                         'comma sequence such as force-complete,abort)' % (
                             bad[0] if bad else value,
                             ', '.join(ON_TIMEOUT_CHOICES)))
    if 'leave' in steps[:-1]:
        raise ValueError('--on-timeout: leave can only be the last step')
    if len(set(steps)) != len(steps):
        raise ValueError('--on-timeout: a step is named twice')
    return steps

# Migration statuses (nova/objects/migration.py and the compute manager).
MIGRATION_FAILED = ('failed', 'error', 'cancelled', 'reverted')
MIGRATION_DONE = ('completed', 'confirmed', 'done')
MIGRATION_FINAL = MIGRATION_FAILED + MIGRATION_DONE

# Seconds one HTTP request may take (connect, and each read) unless the
# operator says otherwise (--api-timeout); keystoneauth's Session.timeout.
DEFAULT_API_TIMEOUT = 60.0
# Seconds an API call may stay unanswered after a Ctrl-C (see
# ``Executor.interrupt_grace``).
INTERRUPT_GRACE = 5.0

# nova's power_state RUNNING (nova/compute/power_state.py).
POWER_RUNNING = 1

# Source/Dest Compute as in ``openstack server migration list``.
ROW_COLUMNS = ('ID', 'Name', 'Project', 'Status Before', 'Method',
               'Source Compute', 'Dest Compute', 'Result', 'Seconds',
               'Message')


# ---------------------------------------------------------------- faults

def http_status(exc):
    return getattr(exc, 'status_code', None) or getattr(exc, 'http_status',
                                                         None)


def is_transient(exc):
    """True for faults worth retrying: 5xx, connection problems, timeouts."""
    status = http_status(exc)
    if isinstance(status, int):
        return status >= 500 or status == 429
    try:
        from keystoneauth1 import exceptions as ksa_exc
        if isinstance(exc, (ksa_exc.ConnectionError,
                            ksa_exc.RetriableConnectionFailure)):
            return True
        if isinstance(exc, ksa_exc.HttpError):
            return bool(exc.http_status and exc.http_status >= 500)
    except ImportError:  # pragma: no cover
        pass
    try:
        import requests
        if isinstance(exc, (requests.ConnectionError, requests.Timeout)):
            return True
    except ImportError:  # pragma: no cover
        pass
    return isinstance(exc, (ConnectionError, TimeoutError))


def bound_api_timeout(conn, seconds=None):
    """Give every API request of ``conn`` a timeout: ``seconds``, else the
    one the session has, else ``DEFAULT_API_TIMEOUT``.

    OSC builds its session without one (osc-lib drops ``api_timeout``), so a
    half-open connection would hang a call for ever.  keystoneauth applies
    ``Session.timeout`` to every request of the connection (token requests
    included); a request that times out raises ``ConnectTimeout``, which
    ``is_transient`` counts as a transient fault.  Returns the timeout.
    """
    session = getattr(conn, 'session', None)
    if session is None:
        return None
    if seconds is not None:
        session.timeout = float(seconds)
    elif getattr(session, 'timeout', None) is None:
        session.timeout = DEFAULT_API_TIMEOUT
    return session.timeout


# Services whose proxy every command builds first (see ``discover``).
DISCOVERED_SERVICES = ('compute', 'network')


def _discovered(proxy):
    """True when PROXY was built on a version document: its endpoint is
    the versioned URL discovery found (and, for nova, the microversion
    range is known)."""
    data = proxy.get_endpoint_data()
    if data is None or not data.api_version:
        return False
    if proxy.service_type == 'compute' and not data.max_microversion:
        return False
    endpoint = proxy.get_endpoint() or ''
    return endpoint.rstrip('/') == (data.url or '').rstrip('/')


def discover(conn, services=DISCOVERED_SERVICES, attempts=5, sleep=None):
    """Build each service's proxy on a real version document.

    openstacksdk builds a service's proxy once per connection, after
    version discovery, and keystoneauth takes a discovery that met a 5xx
    or a reset for "no version document" and falls back to the bare
    catalog (or override) URL: neutron requests then miss ``/v2.0`` and
    get 404, and nova's microversions are unknown (2.1 is assumed) for the
    whole run.  So a transient fault in the first second of a command
    would change what the command does.  Here each proxy is built and
    checked; one built on a failed discovery is forgotten (openstacksdk's
    per-connection cache ``Connection._proxies``: a private attribute,
    used deliberately, since openstacksdk offers no way to rebuild a
    proxy) and built again by ``call_with_retry``.  After ATTEMPTS,
    ``errors.Refused`` (nothing was changed yet).
    """
    cache = getattr(conn, '_proxies', None)
    if not isinstance(cache, dict):
        return      # not an openstacksdk Connection: nothing is cached
    for name in services:
        def build():
            try:
                proxy = getattr(conn, name)
            except Exception as exc:
                if _discovery_fault(exc):   # a fault: try again
                    raise ConnectionError(describe(exc)) from exc
                raise
            if not _discovered(proxy):
                raise ConnectionError(
                    'no version document from the %s API' % name)

        def forget(exc, n):
            LOG.debug('discovery of %s failed (%s); again', name, exc)
            cache.pop(getattr(getattr(type(conn), name, None),
                              'service_type', name), None)

        try:
            call_with_retry(build, attempts=attempts, sleep=sleep,
                            on_retry=forget)
        except Exception as exc:
            if not is_transient(exc):
                raise
            from osc_nodeops import errors
            raise errors.Refused(
                'cannot read the version document of the %s API '
                '(%d attempts, last: %s); nothing changed' % (
                    name, attempts, describe(exc)))


def _discovery_fault(exc):
    """The errors openstacksdk raises when a version document could not be
    read (``NotSupported``, ``ServiceDiscoveryException``)."""
    from openstack import exceptions as sdk_exc
    return isinstance(exc, (sdk_exc.NotSupported,
                            sdk_exc.ServiceDiscoveryException))


class Abandoned(BaseException):
    """A second interrupt while the main thread waited for an API call.

    A BaseException, so that no action's ``except Exception`` takes it for
    a failure of its own: it ends ``Executor.run`` at once.
    """


class Calls(object):
    """Runs API calls, each in its own daemon thread.

    Not a ``ThreadPoolExecutor``: that one joins its workers at interpreter
    exit, so a call that never returns would keep the process alive after
    a second Ctrl-C.  At most one call per item is pending (and one poll),
    so the number of threads stays bounded by ``max_parallel + 1``.
    """

    def __init__(self, wake=None):
        self.wake = wake

    def submit(self, fn):
        fut: futures.Future = futures.Future()

        def run():
            if not fut.set_running_or_notify_cancel():
                return
            try:
                result = fn()
            except BaseException as exc:
                fut.set_exception(exc)
            else:
                fut.set_result(result)
            finally:
                if self.wake is not None:
                    self.wake.set()
        threading.Thread(target=run, name='nodeops-call', daemon=True).start()
        return fut


def describe(exc):
    """One line for an exception (SDK messages can span lines)."""
    text = getattr(exc, 'details', None) or str(exc) or type(exc).__name__
    text = ' '.join(str(text).split())
    status = http_status(exc)
    if status and str(status) not in text:
        text = '%s: %s' % (status, text)
    return text[:300]


def call_with_retry(fn, attempts=5, delay=1.0, max_delay=15.0, sleep=None,
                    on_retry=None):
    """Call ``fn()``; retry transient faults with exponential backoff."""
    sleep = sleep or time.sleep
    for n in range(attempts):
        try:
            return fn()
        except Exception as exc:
            if not is_transient(exc) or n == attempts - 1:
                raise
            if on_retry:
                on_retry(exc, n + 1)
            sleep(min(max_delay, delay * (2 ** n)))


# ---------------------------------------------------------- microversions

class _Discovered(object):
    """What ``openstack.utils.supports_microversion`` reads from an adapter
    (endpoint data and the default microversion), discovered once."""

    def __init__(self, server_min, server_max, pinned):
        self.min_microversion = server_min
        self.max_microversion = server_max
        self.default_microversion = pinned
        self.service_type = 'compute'
        self.service_name = None

    def get_endpoint_data(self):
        return self


class Features(object):
    """Compute microversions negotiated with the cloud.

    ``effective`` is the lower of what the server advertises and what the
    user pinned (``--os-compute-api-version`` / clouds.yaml); openstacksdk
    then caps each request at what its resource classes know (it picks the
    microversion per call).  Never assumes the newest.  The version
    arithmetic is openstacksdk's (``supports_microversion``).
    """

    def __init__(self, server_max=None, server_min='2.1', pinned=None):
        self.server_max = server_max
        self.server_min = server_min or '2.1'
        self.pinned = pinned
        self._view = _Discovered(self.server_min, server_max or '2.1',
                                 pinned)
        try:
            eff = sdk_utils.maximum_supported_microversion(
                typing.cast(typing.Any, self._view),
                pinned or self._view.max_microversion)
        except Exception:  # an unreadable version: the base API
            eff = None
        self.effective = eff or '2.1'

    @classmethod
    def from_proxy(cls, compute):
        ep = None
        try:
            ep = compute.get_endpoint_data()
        except Exception as exc:  # discovery failed: assume the base API
            LOG.debug('microversion discovery failed: %s', exc)
        server_max = getattr(ep, 'max_microversion', None) if ep else None
        server_min = getattr(ep, 'min_microversion', None) if ep else None
        if isinstance(server_max, tuple):
            server_max = '%d.%d' % server_max[:2]
        if isinstance(server_min, tuple):
            server_min = '%d.%d' % server_min[:2]
        pinned = getattr(compute, 'default_microversion', None)
        if not isinstance(pinned, str):
            pinned = None
        return cls(server_max=server_max, server_min=server_min,
                   pinned=pinned)

    def supports(self, version):
        try:
            return sdk_utils.supports_microversion(
                typing.cast(typing.Any, self._view), version)
        except Exception:
            return False

    # Named features used by the runbook.
    @property
    def block_migration_auto(self):
        return self.supports('2.25')

    @property
    def live_host_without_force(self):
        return self.supports('2.30')

    @property
    def cold_migrate_host(self):
        return self.supports('2.56')

    @property
    def migration_changes_since(self):
        return self.supports('2.59')

    @property
    def abort_running(self):
        return self.supports('2.24')

    @property
    def abort_queued(self):
        return self.supports('2.65')

    @property
    def force_complete(self):
        return self.supports('2.22')

    def __repr__(self):
        return '<Features effective=%s server_max=%s pinned=%s>' % (
            self.effective, self.server_max, self.pinned)


# ----------------------------------------------------------------- events

@dataclasses.dataclass
class Event(object):
    kind: str
    message: str
    item: 'PlanItem | None' = None
    host: str | None = None  # the host the run works on (for --events)
    step: str | None = None  # a step of compute node maintain

    def __str__(self):
        if self.item is not None:
            return '%s %s: %s' % (self.item.label, self.kind, self.message)
        if self.step:
            return '%s %s %s: %s' % (self.host or '-', self.step, self.kind,
                                     self.message)
        return '%s: %s' % (self.kind, self.message)


# --------------------------------------------------------------- snapshot

class Snapshot(object):
    """One view of a host: servers on it and migrations touching it.

    ``servers`` may be given as a callable: the server list is then made
    only when an action first looks at a server (most polls of a long
    drain only need the migration records).  ``elsewhere``: servers the
    poller listed on other hosts (e.g. where evacuations went).
    """

    def __init__(self, host, servers, migrations, taken_at=None,
                 elsewhere=()):
        self.host = host
        self._servers = None
        self._load_servers = None
        self._load_error = None
        self._runner = lambda fn: fn()
        if callable(servers):
            self._load_servers = servers
        else:
            self._servers = {s.id: s for s in servers}
        self.taken_at = taken_at if taken_at is not None else time.monotonic()
        self.migrations_by_id = {}
        self._by_server = collections.defaultdict(list)
        for m in migrations:
            self.migrations_by_id[m.id] = m
            self._by_server[m.server_id].append(m)
        for lst in self._by_server.values():
            lst.sort(key=_migration_sort_key)
        self._elsewhere = {s.id: s for s in elsewhere}

    def load_with(self, runner):
        """Make the deferred server list through ``runner(fn)`` (the
        executor's ``bounded``: a wait the main thread can leave)."""
        self._runner = runner

    @property
    def servers(self):
        if self._servers is None:
            if self._load_error is not None:
                raise self._load_error
            try:
                self._servers = {s.id: s for s in self._runner(
                    self._load_servers)}
            except Exception as exc:
                self._load_error = exc  # one try per snapshot
                raise
        return self._servers

    def on_host(self, server_id):
        return server_id in self.servers

    def server(self, server_id):
        return self.servers.get(server_id)

    def elsewhere(self, server_id):
        """The server as listed on another host, or None."""
        return self._elsewhere.get(server_id)

    def migrated_server_ids(self):
        """IDs of the servers that have migration records here."""
        return list(self._by_server)

    def migrations(self, server_id):
        """Migrations of one server, oldest first."""
        return list(self._by_server.get(server_id, ()))

    def migration(self, migration_id):
        return self.migrations_by_id.get(migration_id)

    def in_progress(self, server_id, types=None):
        """The newest unfinished migration of a server, if any."""
        for m in reversed(self._by_server.get(server_id, ())):
            if types and m.migration_type and m.migration_type not in types:
                continue
            if m.status not in MIGRATION_FINAL and m.status != 'finished':
                return m
        return None


def _migration_sort_key(m):
    mid = m.id
    return (0, mid) if isinstance(mid, int) else (1, str(m.created_at or ''))


class HostPoller(object):
    """At most two list calls per snapshot for the whole host."""

    def __init__(self, compute, host, features=None, since=None):
        self.compute = compute
        self.host = host
        self.features = features or Features()
        self.since = since
        self.calls = 0

    def list_servers(self):
        self.calls += 1
        # compute_host, not host: openstacksdk would filter ``host``
        # client-side against Server.host (the create-time field).
        return list(self.compute.servers(details=True, all_projects=True,
                                         compute_host=self.host))

    def list_migrations(self, since=None):
        query = {'host': self.host}
        if since is not None and self.features.migration_changes_since:
            query['changes_since'] = timeutil.api_time(since)
        self.calls += 1
        return list(self.compute.migrations(**query))

    def other_hosts(self, migrations):
        """Hosts whose servers a snapshot also lists (``elsewhere``): none
        here; ``recover.RecoverPoller`` adds where evacuations went."""
        return ()

    def list_elsewhere(self, migrations):
        found = []
        for other in sorted(set(self.other_hosts(migrations)) - {self.host}):
            self.calls += 1
            found.extend(self.compute.servers(
                details=True, all_projects=True, compute_host=other))
        return found

    def snapshot(self, full=False):
        """Migrations, then servers.

        ``full`` (planning): every migration record, servers listed at
        once.  Otherwise (the executor's polls): records changed since
        ``since``, servers listed when first looked at.  Migrations come
        first: nova moves instance.host before it marks the record
        completed, so a record seen completed is never contradicted by an
        older server list.
        """
        migrations = self.list_migrations(None if full else self.since)
        servers = self.list_servers() if full else self.list_servers
        return Snapshot(self.host, servers, migrations,
                        elsewhere=self.list_elsewhere(migrations))


# ------------------------------------------------------------------ items

@dataclasses.dataclass
class Check(object):
    state: str
    message: str = ''
    call: object = None
    destination: str | None = None


class PlanItem(object):
    """One server, its planned method and (after execution) its result."""

    def __init__(self, server, action=None, reason='', source=None,
                 adopt=False, migration_id=None, success_if_skipped=False):
        self.server = server
        self.action = action
        self.reason = reason
        self.source = source if source is not None else getattr(
            server, 'compute_host', None)
        self.adopt = adopt
        self.migration_id = migration_id
        # A skip that is not a failure (e.g. already home).
        self.success_if_skipped = success_if_skipped
        self.status_before = getattr(server, 'status', None)
        self.state = _QUEUED
        self.attempts = 0
        self.transient = 0
        self.known_migrations = set()
        self.issued_at = None
        self.started_at = None
        self.deadline = None
        self.not_before = 0.0
        self.future = None
        self.future_kind = None
        self.future_since = None
        self.data = {}
        self.result = None
        self.message = ''
        self.destination = None
        self.seconds = None
        self.last_migration = None
        # The drain's pre-flight (ops/preflight.py): every Reason found,
        # whether the move fits the cloud and where it would likely land.
        self.blockers = []
        self.fits = None
        self.landing = None
        self.capacity = None
        # Hosts a retry may go to, most likely first (the pre-flight's
        # landing, then the other candidates); empty: the scheduler picks.
        self.candidates = ()
        # The escalation as planned (ladder, retries, fallback) and as it
        # happened (one line per step: timeouts, retries, fallback).
        self.ladder = []
        self.steps = []
        # The owner's maintenance policy (ops/drain.py owner_policy) and
        # what the drain made of it.
        self.policy = None
        self.policy_note = ''
        # Whose problem a row shows: 'pre-existing', 'move' or 'none'.
        self.blame = None
        self.blame_detail = ''

    def step(self, text):
        """Record one step of the escalation (the row's message lists
        them)."""
        self.steps.append(text)

    @property
    def id(self):
        return self.server.id

    @property
    def method(self):
        return self.action.method_name(self) if self.action else 'skip'

    @property
    def label(self):
        name = getattr(self.server, 'name', None)
        return '%s (%s)' % (name, self.id) if name else str(self.id)

    @property
    def ok(self):
        if self.action is None:
            return self.success_if_skipped
        return self.result in (self.action.success, MOVED_EARLIER)

    def row(self):
        return (self.id, getattr(self.server, 'name', None),
                getattr(self.server, 'project_id', None),
                self.status_before, self.method, self.source,
                self.destination, self.result,
                None if self.seconds is None else round(self.seconds, 1),
                self.full_message())

    def full_message(self):
        """The row's message: the escalation steps, then the outcome."""
        last = self.message or self.reason or ''
        parts = list(self.steps) + ([last] if last else [])
        if self.policy_note:
            parts.insert(0, self.policy_note)
        return '; '.join(parts)


class Context(object):
    """What actions need: the compute proxy, features, options."""

    def __init__(self, compute, host, features=None, target_host=None,
                 options=None, events=None, sleep=None):
        self.compute = compute
        self.host = host
        self.features = features or Features()
        self.target_host = target_host
        self.options = options or {}
        self._events = events
        self.sleep = sleep or time.sleep
        # How a call is waited for: directly, or (while an executor runs)
        # in a thread the main thread can leave at a second Ctrl-C.
        self.bounded = lambda fn: fn()

    def emit(self, kind, message, item=None):
        if self._events:
            try:
                self._events(Event(kind, message, item, host=self.host))
            except Exception:  # never let printing break the run
                LOG.exception('event callback failed')

    def api(self, fn, *args, **kwargs):
        """One API call with transient-fault retries."""
        return self.bounded(lambda: call_with_retry(
            lambda: fn(*args, **kwargs), sleep=self.sleep,
            on_retry=lambda exc, n: self.emit(
                'retry', 'transient API fault (%s), retry %d' % (
                    describe(exc), n))))


# ---------------------------------------------------------------- actions

class Action(object):
    """Base class of a method; see the module docstring."""

    name = 'action'
    success = 'done'

    def method_name(self, item):
        """The method as the rows name it (an action that escalates names
        what it became)."""
        return self.name

    def issue(self, ctx, item):
        raise NotImplementedError

    def progress(self, ctx, item, snap):
        raise NotImplementedError

    def verify(self, ctx, item, snap):
        return True, '', None

    def on_timeout(self, ctx, item, mode, snap):
        return None

    def adopt(self, ctx, item, snap):
        return False

    def precheck(self, ctx, item, snap):
        """Before each issue: ``None`` to go on, or a ``Check`` to stop."""
        return None

    def finished(self, ctx, item):
        pass

    def fallback(self, ctx, item):
        """After the last failed attempt: ``(action, note)`` to try once
        more another way (the drain's cold fallback), or None."""
        return None


class MigrationAction(Action):
    """Shared bookkeeping for actions that produce a nova migration record.

    Subclasses set ``migration_types`` and ``done_statuses`` and implement
    ``issue``.  ``progress`` finds the record created by our call (a record
    of this server not known before the call), follows its status, and
    ``verify`` checks the server really left ``item.source`` (and reached
    ``ctx.target_host`` when one was asked).
    """

    migration_types: tuple[str, ...] = ()
    done_statuses: tuple[str, ...] = ('completed',)
    # Statuses at which progress() returns a follow-up call.
    no_record_grace = 90.0
    success = 'moved'

    def _find_migration(self, item, snap):
        if item.migration_id is not None:
            m = snap.migration(item.migration_id)
            if m is not None:
                item.last_migration = m
            return item.last_migration
        candidates = []
        for m in snap.migrations(item.id):
            if m.id in item.known_migrations:
                continue
            if (self.migration_types and m.migration_type
                    and m.migration_type not in self.migration_types):
                continue
            candidates.append(m)
        if candidates:
            m = candidates[-1]
            item.migration_id = m.id
            item.last_migration = m
            return m
        return None

    def adopt(self, ctx, item, snap):
        m = self._find_migration(item, snap)
        if m is not None:
            return True
        srv = snap.server(item.id)
        return bool(srv is not None and srv.task_state)

    def progress(self, ctx, item, snap):
        m = self._find_migration(item, snap)
        if m is None:
            srv = snap.server(item.id)
            waited = snap.taken_at - (item.issued_at or snap.taken_at)
            if (srv is not None and not srv.task_state
                    and waited > self.no_record_grace):
                return Check(FAILED, 'no migration record appeared after '
                             '%ds; server still %s on %s' % (
                                 waited, srv.status, srv.compute_host))
            return Check(PENDING, 'waiting for the migration record')
        return self.check_migration(ctx, item, snap, m)

    # A record completed while the server still shows on the source gets
    # this long to settle before verification calls it a failure.
    settle = 10.0

    def check_migration(self, ctx, item, snap, m):
        if m.status in self.done_statuses:
            if snap.host == item.source and snap.on_host(item.id):
                first = item.data.setdefault('done_seen', snap.taken_at)
                if snap.taken_at - first < self.settle:
                    return Check(PENDING, 'migration %s %s; waiting for the '
                                 'host to change' % (m.id, m.status))
            return Check(COMPLETE, m.status, destination=m.dest_compute)
        if m.status in MIGRATION_FAILED:
            srv = snap.server(item.id)
            where = (' (server %s on %s)' % (srv.status, srv.compute_host)
                     if srv is not None else '')
            # Aborted by the ladder or failed: a retry goes to another
            # host (Executor._retry_or_fail).
            return Check(FAILED, 'migration %s %s%s' % (m.id, m.status,
                                                        where))
        return Check(PENDING, 'migration %s %s' % (m.id, m.status))

    def verify(self, ctx, item, snap):
        m = item.last_migration
        if m is None or m.status not in self.done_statuses:
            return False, 'migration record not completed', None
        dest = m.dest_compute
        if snap.host == item.source:
            # Watching the source: the server must be gone from it.
            srv = snap.server(item.id)
            if srv is not None:
                return (False, 'migration %s says %s but the server is still '
                        'on %s (%s)' % (m.id, m.status, item.source,
                                        srv.status), item.source)
            now = dest
        else:
            srv = snap.server(item.id)
            if srv is not None:
                now = snap.host
            else:
                srv = ctx.api(ctx.compute.get_server, item.id)
                now = srv.compute_host
        if not now or now == item.source:
            return (False, 'server still on %s after migration %s' % (
                item.source, m.status), now)
        if ctx.target_host and now != ctx.target_host:
            return (False, 'server went to %s, not %s' % (
                now, ctx.target_host), now)
        return True, '', now

    def precheck(self, ctx, item, snap):
        # Never issue a move for a server that already left the source
        # (e.g. a retry after a move we could not verify).
        if (snap is not None and snap.host == item.source
                and not snap.on_host(item.id)):
            return Check(FATAL, 'no longer on %s; not moving it again' %
                         item.source)
        return None

    def adopt_in_progress(self, item, snap):
        """Resume: take over the server's unfinished migration."""
        m = snap.in_progress(item.id, self.migration_types or None)
        if m is None:
            return False
        item.migration_id = m.id
        item.last_migration = m
        return True

    def on_timeout(self, ctx, item, mode, snap):
        m = item.last_migration
        if mode == 'leave' or m is None:
            return None
        status = m.status
        if mode == 'abort':
            ok = ((status == 'running' and ctx.features.abort_running) or
                  (status in ('queued', 'preparing')
                   and ctx.features.abort_queued))
            if not ok:
                return None
            item.data['aborted'] = True
            return lambda: ctx.compute.abort_server_migration(
                m.id, item.id, ignore_missing=False)
        if mode == 'force-complete':
            if status != 'running' or not ctx.features.force_complete:
                return None
            return lambda: ctx.compute.force_complete_server_migration(
                m.id, item.id)
        return None


# --------------------------------------------------------------- executor

COMPUTE_BINARY = 'nova-compute'


def find_compute_service(compute, host, not_found=LookupError):
    """The nova-compute service of ``host`` (exact host name match: nova
    filters by host, we check again); raise ``not_found`` with one line if
    there is none."""
    services = [s for s in call_with_retry(
        lambda: list(compute.services(host=host, binary=COMPUTE_BINARY)))
        if s.host == host and s.binary == COMPUTE_BINARY]
    if not services:
        raise not_found('no nova-compute service on host %r' % host)
    return services[0]


def settle(items, dry_run):
    """Give every item the executor did not touch its final result: SKIPPED
    for a skip, PLANNED for a planned action in a dry run."""
    for item in items:
        if item.result is not None:
            continue
        if item.action is None:
            item.result = SKIPPED
        elif dry_run:
            item.result = PLANNED


def another_host(item, target_host=None):
    """Where a retry goes: a candidate (``item.candidates``, the
    pre-flight's landing first) that is neither the source nor a host a
    move of this item already failed to; None lets the scheduler choose
    (no candidates known, or ``--target-host``)."""
    if target_host:
        return None
    failed = set(item.data.get('failed_hosts', ())) | {item.source}
    for host in item.candidates:
        if host and host not in failed:
            return host
    return None


class Executor(object):
    """Bounded-parallel runner of plan items; see the module docstring."""

    @classmethod
    def from_options(cls, ctx, poller, opts, on_timeout=None, **kwargs):
        """An executor configured from a command's options object
        (``max_parallel``, ``poll_interval``, ``timeout``, ``retries``,
        ``retry_delay`` and, unless given, ``on_timeout``)."""
        return cls(ctx, poller, max_parallel=opts.max_parallel,
                   poll_interval=opts.poll_interval, timeout=opts.timeout,
                   on_timeout=on_timeout or opts.on_timeout,
                   retries=opts.retries, retry_delay=opts.retry_delay,
                   **dict({'step_timeout': getattr(opts, 'step_timeout',
                                                   None)}, **kwargs))

    def __init__(self, ctx, poller, max_parallel=4, poll_interval=2.0,
                 timeout=600.0, on_timeout='abort', retries=1,
                 retry_delay=5.0, transient_retries=6, grace=None,
                 clock=None, wait=None, handle_sigint=True, hung_after=None,
                 step_timeout=None, guard=None):
        if max_parallel < 1:
            raise ValueError('max_parallel must be at least 1')
        self.ladder = parse_ladder(on_timeout)
        self.ctx = ctx
        self.poller = poller
        self.max_parallel = max_parallel
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.on_timeout = ','.join(self.ladder)
        self.retries = retries
        self.retry_delay = retry_delay
        self.transient_retries = transient_retries
        # How long each step of the ladder gets before the next one (and
        # the last one before the item is left running).
        if step_timeout is not None:
            grace = step_timeout
        self.grace = grace if grace is not None else max(60.0, timeout / 2)
        self.clock = clock or time.monotonic
        self.handle_sigint = handle_sigint
        self.stopping = False
        self.abandon = False
        self.interrupted = False
        self.snapshots = 0
        self._wake = threading.Event()
        self._wait = wait or self._wake.wait
        self._calls = Calls(self._wake)
        self.bounded_tick = 0.2
        # Real seconds a call may stay unanswered after the first
        # interrupt before the run leaves as after a second one: Ctrl-C
        # waits for the moves in flight, never for a hung call.
        self.interrupt_grace = INTERRUPT_GRACE
        self._interrupted_at = None
        # Real seconds after which a call that has not returned is given up.
        self.hung_after = hung_after if hung_after is not None else timeout
        self._poll_failures = 0
        self._next_poll = 0.0
        # Called before each batch of starts (the host lease's ``check``):
        # when it raises an ``errors.NodeOpsError``, nothing more starts,
        # the moves in flight are still watched, and ``stopped_by`` says
        # why (one line).
        self.guard = guard
        self.stopped_by = None

    # -- signals
    def interrupt(self):
        """What SIGINT does; callable from tests or other handlers."""
        self.interrupted = True
        if not self.stopping:
            self.stopping = True
            self._interrupted_at = time.monotonic()
            self.ctx.emit('interrupt', 'no new operations will start; '
                          'waiting for the ones in flight (interrupt again '
                          'to leave them running)')
        else:
            self.abandon = True
            self.ctx.emit('interrupt', 'leaving in-flight operations '
                          'running; rerun to pick them up')
        self._wake.set()

    def _install_sigint(self):
        if (not self.handle_sigint or threading.current_thread()
                is not threading.main_thread()):
            return None
        try:
            return signal.signal(signal.SIGINT,
                                 lambda signum, frame: self.interrupt())
        except ValueError:  # pragma: no cover
            return None

    # -- helpers
    def bounded(self, fn):
        """Call ``fn`` in a daemon thread and wait for it, but not past a
        second interrupt (then raise ``Abandoned``).  Each HTTP request is
        bounded by the API timeout; this bounds the wait for a Ctrl-C."""
        if threading.current_thread() is not threading.main_thread():
            return fn()
        fut = self._calls.submit(fn)
        while True:
            if self.abandon or self._leave_hung_call():
                raise Abandoned()
            try:
                return fut.result(timeout=self.bounded_tick)
            except futures.TimeoutError:
                continue

    def _leave_hung_call(self):
        """After the first interrupt, a call still unanswered
        ``interrupt_grace`` seconds later: leave now, as after a second
        interrupt (the moves in flight go on; a rerun picks them up).
        True when the run leaves."""
        if (self.abandon or self._interrupted_at is None
                or time.monotonic() - self._interrupted_at
                < self.interrupt_grace):
            return self.abandon
        self.abandon = True
        self.ctx.emit('interrupt', 'an API call has not answered %gs after '
                      'the interrupt: leaving in-flight operations running; '
                      'rerun to pick them up' % self.interrupt_grace)
        self._wake.set()
        return True

    def _finish(self, item, result, message=''):
        now = self.clock()
        item.state = _FINISHED
        item.result = result
        if message:
            item.message = message
        if item.started_at is not None:
            item.seconds = now - item.started_at
        detail = item.message
        if item.action is not None and result == item.action.success:
            detail = ('%s -> %s in %.1fs' % (item.source, item.destination,
                                             item.seconds or 0)
                      + ('; ' + item.message if item.message else ''))
        self.ctx.emit(result, detail or result, item)

    def _submit(self, pool, item, kind, fn):
        item.future_kind = kind
        item.future_since = time.monotonic()

        def run():
            try:
                return fn()
            finally:
                self._wake.set()
        item.future = pool.submit(run)

    def _issue_fn(self, item):
        return lambda: item.action.issue(self.ctx, item)

    def _start(self, pool, item, snap):
        try:
            stop = item.action.precheck(self.ctx, item, snap)
        except Exception as exc:
            stop = Check(FAILED, 'precheck failed: %s' % describe(exc))
        if stop is not None:
            if item.started_at is None:
                item.started_at = self.clock()
            self._finish(item, FAILED, stop.message)
            return
        now = self.clock()
        item.attempts += 1
        if item.started_at is None:
            item.started_at = now
        # An issue call that never returns times out like a move.
        item.deadline = now + self.timeout
        if snap is not None:
            item.known_migrations = {m.id for m in snap.migrations(item.id)}
        item.state = _ISSUING
        self.ctx.emit('start', '%s (attempt %d)' % (item.method,
                                                     item.attempts), item)
        self._submit(pool, item, 'issue', self._issue_fn(item))

    def _requeue(self, item):
        m = item.last_migration
        if m is not None and m.dest_compute and \
                m.dest_compute != item.source:
            failed = item.data.setdefault('failed_hosts', [])
            if m.dest_compute not in failed:
                failed.append(m.dest_compute)
        item.state = _QUEUED
        item.migration_id = None
        item.last_migration = None
        for key in ('call_pending', 'done_seen', 'ladder_step', 'aborted',
                    'ladder_asked', 'confirm_sent'):
            item.data.pop(key, None)
        item.data['requeued_at'] = self.clock()
        item.not_before = self.clock() + self.retry_delay
        item.data['retry_host'] = another_host(item, self.ctx.target_host)

    def _retry_or_fail(self, item, message):
        if item.attempts <= self.retries and not self.stopping:
            self._requeue(item)
            item.message = message
            where = item.data.get('retry_host')
            where = ('on %s' % where) if where else (
                'the scheduler chooses' if not self.ctx.target_host else
                'on %s (--target-host)' % self.ctx.target_host)
            item.step('attempt %d: %s; retry %d of %d (%s)' % (
                item.attempts, message, item.attempts, self.retries, where))
            self.ctx.emit('retry', '%s; retrying (%d of %d), %s' % (
                message, item.attempts, self.retries, where), item)
            return True
        fallback = None
        if not self.stopping:
            try:
                fallback = item.action.fallback(self.ctx, item)
            except Exception as exc:
                LOG.debug('fallback failed', exc_info=True)
                self.ctx.emit('warning', 'fallback not possible: %s' %
                              describe(exc), item)
        if fallback is not None:
            action, note = fallback
            self._requeue(item)
            item.data.pop('phase', None)
            item.step('attempt %d: %s; %s' % (item.attempts, message, note))
            self.ctx.emit('fallback', '%s; %s' % (message, note), item)
            item.action = action
            item.attempts = 0
            item.message = ''
            return True
        self._finish(item, FAILED, message)
        return False

    def _collect_future(self, item):
        fut = item.future
        kind = item.future_kind
        item.future = None
        item.future_kind = None
        exc = fut.exception()
        now = self.clock()
        if kind == 'issue':
            if exc is None:
                item.state = _RUNNING
                item.issued_at = now
                item.deadline = now + self.timeout
                item.transient = 0
                self.ctx.emit('issued', item.method, item)
            elif is_transient(exc):
                item.transient += 1
                item.state = _UNSURE
                item.issued_at = now
                item.deadline = now + self.timeout
                self.ctx.emit('unsure', 'transient fault while issuing (%s); '
                              'checking whether it went through' %
                              describe(exc), item)
            else:
                self._retry_or_fail(item, 'refused: %s' % describe(exc))
        else:  # follow-up call or on-timeout call
            item.data.pop('call_pending', None)
            if exc is None:
                item.transient = 0
                return
            if is_transient(exc):
                item.transient += 1
                self.ctx.emit('retry', '%s: transient fault (%s)' % (
                    kind, describe(exc)), item)
                # progress() will ask for the call again on a later poll
                item.data.pop('call_pending', None)
                return
            item.message = '%s failed: %s' % (kind, describe(exc))
            self.ctx.emit('warning', item.message, item)
            item.data.pop('call_pending', None)
            if kind in self.ladder:
                # The cloud refused this step: the next one at once.
                item.step('%s refused: %s' % (kind, describe(exc)))
                item.deadline = now

    def _snapshot(self, force=False):
        now = self.clock()
        if now < self._next_poll and not force:
            return None
        try:
            snap = self.bounded(self.poller.snapshot)
            snap.load_with(self.bounded)
        except Exception as exc:
            if not is_transient(exc):
                # Not transient, but losing track is worse: keep trying with
                # backoff, the timeouts bound the wait.
                LOG.debug('poll failed', exc_info=True)
            self._poll_failures += 1
            delay = min(30.0, self.poll_interval * (2 ** self._poll_failures))
            self._next_poll = now + delay
            self.ctx.emit('poll', 'listing the host failed (%s); retrying in '
                          '%.0fs' % (describe(exc), delay))
            return None
        self._poll_failures = 0
        self._next_poll = now + self.poll_interval
        self.snapshots += 1
        snap.taken_at = now
        return snap

    def _settle_unsure(self, item, snap):
        """An item whose issue call hit a transient fault: adopt it if the
        snapshot shows the call went through, else queue it again.  True
        when the item is running now."""
        try:
            adopted = item.action.adopt(self.ctx, item, snap)
        except Exception as exc:
            # The lookup itself failed (the snapshot's server list timed
            # out): still unsure; the next poll looks again, the item's
            # deadline bounds the wait.
            LOG.debug('adopt failed', exc_info=True)
            if item.data.get('last') != 'unsure':
                item.data['last'] = 'unsure'
                self.ctx.emit('progress', 'could not check whether the call '
                              'went through (%s); looking again' %
                              describe(exc), item)
            return False
        if adopted:
            item.state = _RUNNING
            self.ctx.emit('adopted', 'the call went through', item)
            return True
        if item.transient > self.transient_retries:
            self._finish(item, FAILED, 'API kept failing while issuing')
            return False
        item.state = _QUEUED
        item.attempts -= 1  # a transient fault is not an attempt
        item.not_before = self.clock() + min(
            30.0, self.retry_delay * item.transient)
        return False

    def _progress(self, pool, item, snap):
        if item.state == _UNSURE and not self._settle_unsure(item, snap):
            return
        try:
            check = item.action.progress(self.ctx, item, snap)
        except Exception as exc:
            # A bug or an API fault in an action must not lose the others:
            # keep the item in flight; its timeout bounds the wait.
            LOG.debug('progress failed', exc_info=True)
            check = Check(PENDING, 'could not check progress: %s' %
                          describe(exc))
        if check.state == PENDING:
            if check.message and check.message != item.data.get('last'):
                item.data['last'] = check.message
                self.ctx.emit('progress', check.message, item)
            return
        if check.state == CALL:
            if not item.data.get('call_pending'):
                item.data['call_pending'] = True
                self.ctx.emit('call', check.message, item)
                self._submit(pool, item, check.message or 'call', check.call)
            return
        item.data.pop('call_pending', None)
        if check.state == COMPLETE:
            self._complete(item, check, snap)
        elif check.state == FATAL:
            self._finish(item, FAILED, check.message)
        else:
            self._retry_or_fail(item, check.message)

    def _complete(self, item, check, snap):
        """The action says it is done: verify, then finish or retry."""
        action = item.action
        try:
            ok, message, dest = action.verify(self.ctx, item, snap)
        except Exception as exc:
            if is_transient(exc):
                # The look itself failed (e.g. the server list timed out):
                # the move is not in doubt, look again on the next poll
                # rather than issue it again; the deadline bounds this.
                LOG.debug('verify failed', exc_info=True)
                self.ctx.emit('progress', 'could not verify yet (%s); '
                              'looking again' % describe(exc), item)
                return
            ok, message, dest = (False, 'verification failed: %s' %
                                 describe(exc), None)
        item.destination = dest or check.destination
        if not ok:
            self._retry_or_fail(item, 'verification failed: ' + message)
            return
        try:
            action.finished(self.ctx, item)
        except Exception as exc:
            message = 'done, but: %s' % describe(exc)
        item.message = message
        self._finish(item, action.success, message)

    def _check_timeout(self, pool, item, snap):
        now = self.clock()
        if item.deadline is None or now < item.deadline:
            return
        if item.future is not None:
            # Real seconds, whatever clock the executor runs on: a call is
            # hung when it has not returned within a whole item timeout.
            if time.monotonic() - item.future_since > self.hung_after:
                self._timeout_pending_call(item)
            return
        m = item.last_migration
        what = ('migration %s %s' % (m.id, m.status)) if m else 'no record'
        step = item.data.get('ladder_step', 0)
        asked = item.data.get('ladder_asked')
        while step < len(self.ladder):
            mode = self.ladder[step]
            step += 1
            item.data['ladder_step'] = step
            # Seconds the migration has run (a step after one that could
            # not apply runs at once, not a --step-timeout later).
            waited = now - (item.issued_at if item.issued_at is not None
                            else now)
            if mode == 'leave':
                break
            try:
                call = item.action.on_timeout(self.ctx, item, mode, snap)
            except Exception as exc:
                LOG.debug('on_timeout failed', exc_info=True)
                self.ctx.emit('warning', 'on-timeout failed: %s' %
                              describe(exc), item)
                call = None
            if call is None:
                # Not possible now (e.g. force-complete of a migration
                # that is not running): the next step at once.
                note = '%s after %ds not possible (%s)' % (mode, waited,
                                                           what)
                item.step(note)
                self.ctx.emit('timeout', note, item)
                continue
            item.data['ladder_asked'] = asked = mode
            note = '%s after %ds (%s)' % (mode, waited, what)
            item.step(note)
            self.ctx.emit('timeout', note, item)
            item.deadline = now + self.grace
            item.message = 'timed out after %ds; %s requested' % (
                self.timeout, mode)
            self._submit(pool, item, mode, call)
            return
        if asked:
            self._finish(item, TIMEOUT, 'still not finished %ds after '
                         '%s; left running (rerun to pick it up)' % (
                             self.grace, asked))
            return
        self._finish(item, TIMEOUT, 'timed out after %ds (%s); left '
                     'running (rerun to pick it up)' % (self.timeout, what))

    def _timeout_pending_call(self, item):
        """The item's deadline passed with one of its calls not answered
        (each HTTP request has a timeout, so this is a call that hangs in
        spite of it): stop waiting for it.  Whether the call took effect
        is unknown; a rerun looks at the cloud afresh."""
        kind = item.future_kind or 'call'
        item.future = None  # its thread is a daemon: never waited for
        item.future_kind = None
        item.data.pop('call_pending', None)
        m = item.last_migration
        what = (' (migration %s %s)' % (m.id, m.status)) if m else ''
        self._finish(item, TIMEOUT, 'the %s call did not return within '
                     '%ds%s; it may or may not have taken effect (rerun to '
                     'pick it up)' % (kind, self.hung_after, what))

    # -- main loop
    def _admit(self, items):
        """The queue of items to issue and the in-flight ones to resume."""
        queue: collections.deque = collections.deque()
        inflight = []
        for item in items:
            if item.action is None:
                continue
            if not item.adopt:
                queue.append(item)
                continue
            now = self.clock()
            item.state = _RUNNING
            item.attempts = 1
            item.started_at = item.issued_at = now
            item.deadline = now + self.timeout
            inflight.append(item)
            self.ctx.emit('resume', 'picking up %s in flight' % (
                'migration %s' % item.migration_id
                if item.migration_id is not None else item.method), item)
        return queue, inflight

    def _watch(self, pool, inflight, snap):
        """Collect finished calls, poll the host once, look at every
        running item and time out the late ones; return the snapshot."""
        for item in list(inflight):
            if item.future is not None and item.future.done():
                self._collect_future(item)
        watching = [i for i in inflight
                    if i.state in (_RUNNING, _UNSURE, _GRACE)
                    and i.future is None]
        if watching:
            new = self._snapshot()
            if new is not None:
                snap = new
                for item in watching:
                    if item.state != _FINISHED:
                        self._progress(pool, item, snap)
        for item in list(inflight):
            if item.state in (_ISSUING, _RUNNING, _UNSURE, _GRACE):
                self._check_timeout(pool, item, snap)
        return snap

    def _sort(self, queue, inflight):
        """Finished items leave, re-queued ones go back to the queue; on
        interrupt, the queue is dropped and (the second time) the items in
        flight are left running."""
        if not self.abandon and any(
                i.future is not None and not i.future.done()
                for i in inflight):
            self._leave_hung_call()
        if self.abandon:
            for item in inflight:
                if item.state == _FINISHED:
                    continue
                m = item.last_migration
                what = (' (migration %s %s)' % (m.id, m.status)
                        if m else '')
                if item.future is not None and not item.future.done():
                    what += ('; its %s call had not answered (it may or '
                             'may not have taken effect)'
                             % (item.future_kind or 'API'))
                self._finish(item, INTERRUPTED, 'left in flight%s; '
                             'rerun to pick it up' % what)
            inflight.clear()
        for item in list(inflight):
            if item.state == _FINISHED:
                inflight.remove(item)
            elif item.state == _QUEUED and item.future is None:
                inflight.remove(item)
                queue.append(item)
        if self.stopping:
            for item in queue:
                self._finish(item, NOT_STARTED,
                             'interrupted before it started')
            queue.clear()

    def _start_ready(self, pool, queue, inflight, snap):
        """Start queued items whose time has come, at most
        ``max_parallel`` in flight; return the (maybe newer) snapshot."""
        now = self.clock()
        guarded = False
        while queue and len(inflight) < self.max_parallel:
            ready = [i for i in queue if i.not_before <= now]
            if not ready:
                break
            if self.guard is not None and not guarded:
                guarded = True
                if not self._guard_allows(queue):
                    break
            item = ready[0]
            requeued = item.data.get('requeued_at')
            if requeued is not None and (
                    snap is None or snap.taken_at <= requeued):
                # A retry looks at the host afresh before issuing.
                new = self._snapshot(force=True)
                if new is None:
                    break
                snap = new
            queue.remove(item)
            inflight.append(item)
            self._start(pool, item, snap)
        return snap

    def _guard_allows(self, queue):
        """Run the guard once for a batch; on refusal, every queued item
        is finished NOT_STARTED and the executor stops starting."""
        try:
            self.bounded(self.guard)
            return True
        except errors.NodeOpsError as exc:
            self.stopped_by = errors.one_line(exc)
        self.stopping = True
        self.ctx.emit('lease', self.stopped_by)
        for item in queue:
            self._finish(item, NOT_STARTED, 'not started: %s' %
                         self.stopped_by)
        queue.clear()
        return False

    def _wait_time(self, queue, inflight):
        """Until a call returns, the next poll or the next queued start."""
        now = self.clock()
        wait = self.poll_interval
        if self.stopping:   # to see a call hang past interrupt_grace
            wait = min(wait, self.bounded_tick)
        if any(i.future is None for i in inflight):
            wait = min(wait, self._next_poll - now)
        if queue:
            wait = min(wait, min(i.not_before for i in queue) - now)
        return max(0.05, wait)

    def run(self, items, initial_snapshot=None):
        """Execute the items that have an action; return all items."""
        queue, inflight = self._admit(items)
        snap = initial_snapshot
        old_handler = self._install_sigint()
        pool = self._calls
        self.ctx.bounded = self.bounded
        try:
            while queue or inflight:
                self._wake.clear()
                try:
                    snap = self._watch(pool, inflight, snap)
                    self._sort(queue, inflight)
                    snap = self._start_ready(pool, queue, inflight, snap)
                except Abandoned:
                    # A second interrupt during an API call: report what
                    # is known and leave; the call's thread is not waited
                    # for.
                    self._sort(queue, inflight)
                    break
                if not (queue or inflight):
                    break
                self._wait(self._wait_time(queue, inflight))
        finally:
            self.ctx.bounded = lambda fn: fn()
            if old_handler is not None:
                signal.signal(signal.SIGINT, old_handler)
        return items
