"""One poll of the cloud for every host of a wave.

A drain watches its host with two listings per poll (``HostPoller``); a
wave of many hosts drained at once would make two per host.  Instead
the hosts share a ``WavePoll``: each interval ONE migration list of the
whole cloud and ONE server list, both of what changed since the poll
before (``changes-since``, with a margin), kept in a cache from which
each host's ``Snapshot`` is cut (``WaveHostPoller``).  However many hosts
a wave has, a poll interval costs two requests; the migration list is
also what the slot scheduler (``engine.slots``) counts: every unfinished
migration of the cloud, ours or not.

Migrations are listed before servers (as ``HostPoller`` does): nova
moves ``instance.host`` before it marks the record completed, so a record
seen completed is never contradicted by an older server list.
"""

import datetime
import threading
import time

from osc_nodeops import timeutil
from osc_nodeops.ops.cloud import nova
from osc_nodeops.ops.engine import snapshot

# Seconds a ``changes-since`` listing reaches back before the previous
# one began: the API's clock and ours differ, and a row is written some
# time after its ``updated_at``.  Overlap costs nothing (the cache is
# keyed by ID), a gap would lose a change.
MARGIN = 60.0
# How far back the first migration list reaches: a move older than this
# that never changed since is not seen.
LOOKBACK = datetime.timedelta(hours=1)


class WavePoll(object):
    """The shared cache of one wave's polls; thread-safe (each host's
    executor may run in a thread of its own)."""

    def __init__(self, compute, hosts, features=None, interval=2.0,
                 clock=time.monotonic, now=timeutil.utcnow):
        self.compute = compute
        self.hosts = set(hosts)
        self.features = features or nova.Features()
        # A view younger than this is served from the cache.
        self.fresh_for = interval * 0.9
        self.clock = clock
        self.now = now
        self._lock = threading.Lock()
        self._migrations: dict = {}
        self._servers: dict = {}
        self._migrations_since = now() - LOOKBACK
        self._servers_since = None   # None: list each host once, in full
        self.migrations_at = None    # clock of the last migration list
        self._servers_at = None
        self.calls = 0
        self.polls = 0

    def _listed(self, fn):
        self.calls += 1
        return list(fn())

    def refresh(self, fresh=False):
        """A new migration list, unless one younger than ``fresh_for`` is
        at hand (``fresh``: always).  Returns its clock time."""
        with self._lock:
            at = self.clock()
            if (fresh or self.migrations_at is None
                    or at - self.migrations_at >= self.fresh_for):
                self._list_migrations()
                self.migrations_at = at
                self.polls += 1
            return self.migrations_at

    def _list_migrations(self):
        began = self.now()
        query = {}
        if self.features.migration_changes_since:
            query['changes_since'] = timeutil.api_time(
                self._migrations_since)
        else:   # before 2.59: every record, each time
            self._migrations.clear()
        for m in self._listed(lambda: self.compute.migrations(**query)):
            self._migrations[m.id] = m
        self._migrations_since = began - datetime.timedelta(seconds=MARGIN)

    def servers_on(self, host, listed_after):
        """The servers on ``host`` as a server list newer than the
        migration list of ``listed_after`` (clock time) shows them."""
        with self._lock:
            if self._servers_at is None or self._servers_at < listed_after:
                self._list_servers()
            return [s for s in self._servers.values()
                    if s.compute_host == host]

    def _list_servers(self):
        at, began = self.clock(), self.now()
        if self._servers_since is None:
            for host in sorted(self.hosts):
                for s in self._listed(lambda: self.compute.servers(
                        details=True, all_projects=True, compute_host=host)):
                    self._servers[s.id] = s
        else:
            for s in self._listed(lambda: self.compute.servers(
                    details=True, all_projects=True,
                    changes_since=timeutil.api_time(self._servers_since))):
                if s.compute_host in self.hosts and s.status != 'DELETED':
                    self._servers[s.id] = s
                else:   # left the wave's hosts, or deleted
                    self._servers.pop(s.id, None)
        self._servers_since = began - datetime.timedelta(seconds=MARGIN)
        self._servers_at = at

    def view(self, host, fresh=False, elsewhere=None):
        """``host``'s ``Snapshot`` from the wave's latest poll: its
        migrations (those leaving or entering it), its servers (listed
        when first looked at), and the cloud's migrations for the slots.
        ``elsewhere(migrations)``: servers the poller lists on other hosts
        (``HostPoller.list_elsewhere``)."""
        at = self.refresh(fresh)
        with self._lock:
            cloud = list(self._migrations.values())
        mine = [m for m in cloud if host in (m.source_compute,
                                             m.dest_compute)]
        return snapshot.Snapshot(host, lambda: self.servers_on(host, at),
                                 mine, cloud=cloud, elsewhere=elsewhere(
                                     mine) if elsewhere else ())


class WaveHostPoller(snapshot.HostPoller):
    """A ``HostPoller`` whose polls are views of the wave's ``WavePoll``
    (``shared``; None: a ``HostPoller``'s own polls); its full snapshot
    (the plan's) lists the host itself."""

    def __init__(self, compute, host, shared, features=None, since=None):
        super(WaveHostPoller, self).__init__(compute, host, features,
                                             since=since)
        self.shared = shared

    def snapshot(self, full=False, each=None, fresh=False):
        if full or self.shared is None:
            return super(WaveHostPoller, self).snapshot(full=full, each=each)
        return self.shared.view(self.host, fresh, self.list_elsewhere)


class Fleet(object):
    """What the hosts of a wave share while they are drained at once: one
    ``WavePoll``, one ``slots.Slots``, the plans' pool of candidate hosts,
    and Ctrl-C.

    ``run(jobs)`` runs each host's job in a thread of its own and waits
    in the main thread; the executors in the threads install no signal
    handler (only the main thread may), so each registers its
    ``Interrupts`` here and a Ctrl-C in the main thread is passed to all
    of them (the first: no new moves, the ones in flight finish; the
    second: leave them running).  ``cancelled`` is set at the first, for
    work that is not an executor (an operator's step)."""

    def __init__(self, poll=None, slots=None, pool=None):
        self.poll = poll
        self.slots = slots
        # The wave's plans pack onto one pool of candidate hosts, read
        # once (``drain.gather.Pool``).
        self.pool = pool
        self.cancelled = threading.Event()
        self._lock = threading.Lock()
        self._interrupts: list = []
        self.interrupts_seen = 0

    def check(self):
        """Between two steps of a thread's work: ``KeyboardInterrupt``
        once a Ctrl-C came (what the main thread would have raised)."""
        if self.cancelled.is_set():
            raise KeyboardInterrupt()

    def sleep(self, seconds):
        """A pause a Ctrl-C ends (``KeyboardInterrupt``)."""
        if self.cancelled.wait(seconds):
            raise KeyboardInterrupt()

    def register(self, interrupts):
        """An executor of the wave starts: it gets the interrupts that
        came before it."""
        with self._lock:
            self._interrupts.append(interrupts)
            for _ in range(min(self.interrupts_seen, 2)):
                interrupts.interrupt()

    def interrupt(self):
        with self._lock:
            self.interrupts_seen += 1
            self.cancelled.set()
            for interrupts in self._interrupts:
                interrupts.interrupt()

    def run(self, jobs):
        """``{name: callable}`` -> ``{name: (result, exception)}``, each
        job in its own thread, all at once.

        The main thread waits on an event per job, not ``Thread.join``: a
        KeyboardInterrupt inside ``join`` can leave the thread marked
        stopped while it runs (CPython's ``_wait_for_tstate_lock``), and
        the wave would go on without it."""
        out: dict = {}
        ended = {name: threading.Event() for name in jobs}

        def work(name, fn):
            try:
                out[name] = (fn(), None)
            except BaseException as exc:   # reported, not lost
                out[name] = (None, exc)
            finally:
                ended[name].set()
        for name, fn in jobs.items():
            threading.Thread(target=work, args=(name, fn),
                             name='wave-%s' % name, daemon=True).start()
        for event in ended.values():
            while not event.is_set():
                try:
                    event.wait(0.2)
                except KeyboardInterrupt:
                    self.interrupt()
        return out
