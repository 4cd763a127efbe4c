"""One view of a host per poll: ``Snapshot`` (servers on it, migrations
touching it) and the ``HostPoller`` that takes it with at most two list
calls; ``Polls``: when the executor takes the next one."""

import collections
import logging
import time

from osc_nodeops import errors
from osc_nodeops import timeutil
from osc_nodeops.ops.cloud import calls
from osc_nodeops.ops.cloud import nova

LOG = logging.getLogger(__name__)


class Snapshot(object):
    """One view of a host: servers on it and migrations touching it.

    ``servers`` may be given as a callable: the server list is then made
    only when an action first looks at a server (most polls of a long
    drain only need the migration records).  ``elsewhere``: servers the
    poller listed on other hosts (e.g. where evacuations went).
    """

    def __init__(self, host, servers, migrations, taken_at=None,
                 elsewhere=(), cloud=None):
        self.host = host
        # Every record the poll saw (a wave's poll: the whole cloud's,
        # ``wave.WavePoll``); the slot scheduler counts them.
        self.all_migrations = list(migrations) if cloud is None else cloud
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
            if m.status not in nova.MIGRATION_FINAL and m.status != 'finished':
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
        self.features = features or nova.Features()
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

    def snapshot(self, full=False, each=None, fresh=True):
        """Migrations, then servers (always listed now: ``fresh`` is for
        ``wave.WaveHostPoller``, whose polls may be served from the wave's
        latest).

        ``each(fn)`` makes each listing (planning passes
        ``calls.call_with_retry``): a listing is retried on its own, so a
        fault on one does not make the ones already read be read again
        (one retry around the whole snapshot lost all of its tries, now and
        then, to faults that no single listing met more than three times
        in a row).

        ``full`` (planning): every migration record, servers listed at
        once.  Otherwise (the executor's polls): records changed since
        ``since``, servers listed when first looked at.  Migrations come
        first: nova moves instance.host before it marks the record
        completed, so a record seen completed is never contradicted by an
        older server list.
        """
        each = each or (lambda fn: fn())
        migrations = each(
            lambda: self.list_migrations(None if full else self.since))
        servers = each(self.list_servers) if full else self.list_servers
        return Snapshot(self.host, servers, migrations,
                        elsewhere=each(
                            lambda: self.list_elsewhere(migrations)))


class Polls(object):
    """The executor's polls of the host: one snapshot every ``interval``
    seconds; after a failed one, the next after a backoff."""

    def __init__(self, poller, interval, emit, bounded):
        self.poller = poller
        self.interval = interval
        self.emit = emit
        # How a poll is waited for (``Interrupts.bounded``).
        self.bounded = bounded
        self.failures = 0
        self.next_at = 0.0
        self.snapshots = 0

    def take(self, now, force=False):
        """A new snapshot taken at ``now``, or None (not time yet unless
        ``force``, or the poll failed)."""
        if now < self.next_at and not force:
            return None
        try:
            snap = self.bounded(lambda: self.poller.snapshot(fresh=force))
            snap.load_with(self.bounded)
        except Exception as exc:
            if not calls.is_transient(exc):
                # Not transient, but losing track is worse: keep trying with
                # backoff, the timeouts bound the wait.
                LOG.debug('poll failed', exc_info=True)
            self.failures += 1
            delay = min(30.0, self.interval * (2 ** self.failures))
            self.next_at = now + delay
            self.emit('poll', 'listing the host failed (%s); retrying in '
                      '%ss' % (errors.one_line(
                          exc, style=errors.STATUS),
                          timeutil.seconds_text(delay)))
            return None
        self.failures = 0
        self.next_at = now + self.interval
        self.snapshots += 1
        snap.taken_at = now
        return snap
