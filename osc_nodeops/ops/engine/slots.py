"""The slot scheduler: a move starts only when its source host and its
destination host have a free slot.

nova runs ``max_concurrent_live_migrations`` live migrations per source
(default 1) and keeps the others ``queued``, where a deadline counted
from the issue runs out for nothing; and nothing in nova stops two
sources from sending their servers to one destination at once.  So a
move starts only when fewer than ``per_source`` unfinished migrations
leave its source and fewer than ``per_dest`` come into its destination:
counting every unfinished migration nova lists (another tool's, another
admin's) and every move of ours in flight, in whichever executor of the
run (a wave's hosts share one ``Slots``).  ``--max-parallel`` (the
executor's own bound) caps the moves of the run in flight.

The destination of a move is chosen here, when it starts: the first of
its candidates (the pre-flight's landing first, a retry's next host
first) with a free inbound slot, named to nova where the microversion
lets the scheduler still validate it (2.30 live, 2.56 cold; else the
scheduler chooses and only the source is counted before the start).
"""

import collections
import threading

from osc_nodeops import timeutil
from osc_nodeops.ops.cloud import nova


def unfinished(migration):
    """Copying or about to: not ended, and not a cold migration waiting
    for its confirm (``finished``: nothing moves any more)."""
    return (migration.status not in nova.MIGRATION_FINAL
            and migration.status != 'finished')


class Slots(object):
    """Free slots per source and per destination host; thread-safe (the
    executors of a wave's hosts share one)."""

    def __init__(self, per_source=1, per_dest=1):
        if per_source < 1 or per_dest < 1:
            raise ValueError('slots must be at least 1')
        self.per_source = per_source
        self.per_dest = per_dest
        self._lock = threading.Lock()
        # server id -> [source, destination or None (the scheduler's)]
        self._claims: dict = {}
        # The most moves seen leaving one source / entering one
        # destination when a move started (benchmarks, tests).
        self.most_out = 0
        self.most_in = 0
        # ``busy`` of the last migration list it counted, until a claim
        # changes: a pick tries each ready item against the same list
        # (the cloud's, thousands of records on a big cloud).
        self._counted: tuple = (None, None, None)
        self._version = 0

    def busy(self, migrations):
        """``(out, in)``: unfinished moves per source and per destination,
        ours (claimed) and the cloud's (``migrations``, every record the
        run's poll sees)."""
        seen, version, counts = self._counted
        if seen is migrations and version == self._version:
            return counts
        counts = self._count(migrations)
        self._counted = (migrations, self._version, counts)
        return counts

    def _count(self, migrations):
        out: collections.Counter = collections.Counter()
        into: collections.Counter = collections.Counter()
        for source, dest in self._claims.values():
            out[source] += 1
            if dest:
                into[dest] += 1
        for m in migrations:
            if not unfinished(m):
                continue
            claim = self._claims.get(m.server_id)
            if claim is None:
                out[m.source_compute] += 1
                into[m.dest_compute] += 1
            elif claim[1] is None and m.dest_compute:
                into[m.dest_compute] += 1   # where the scheduler sent ours
        return out, into

    def take(self, item, migrations, hosts):
        """Claim a slot for ``item`` leaving ``item.source``; ``hosts``:
        the destinations it may name, best first (empty: the scheduler
        chooses).  Returns ``(True, host or None)``, or ``(False, why)``
        when no slot is free (the item waits)."""
        with self._lock:
            out, into = self.busy(migrations)
            if out[item.source] >= self.per_source:
                return False, '%s has %d move(s) out running' % (
                    item.source, out[item.source])
            dest = None
            if hosts:
                free = [h for h in hosts if into[h] < self.per_dest]
                if not free:
                    return False, 'no free slot into %s' % ', '.join(hosts)
                dest = free[0]
            self._claims[item.id] = [item.source, dest]
            self._version += 1
            self.most_out = max(self.most_out, out[item.source] + 1)
            if dest:
                self.most_in = max(self.most_in, into[dest] + 1)
            return True, dest

    def moment(self, migrations):
        """What the slots are held by: our moves and the cloud's
        unfinished migrations.  A wait for a slot is measured from the
        last time this changed (a queue that moves is no reason to give
        up; one that does not is)."""
        with self._lock:
            return frozenset(self._claims) | frozenset(
                m.id for m in migrations if unfinished(m))

    def release(self, item):
        """``item`` is no longer in flight (finished, or queued again)."""
        with self._lock:
            if self._claims.pop(item.id, None) is not None:
                self._version += 1


def destinations(ctx, item, live):
    """Where ``item`` may go, best first: ``--target-host``; else, when
    the cloud lets a move name a host (2.30 live without force, 2.56
    cold), the pre-flight's candidates (landing first), none a host a
    move of it failed to; an item in an
    anti-affinity group only its landing (another candidate may hold a
    member).  Empty: the scheduler chooses."""
    if ctx.target_host:
        return (ctx.target_host,)
    if not (ctx.features.live_host_without_force if live
            else ctx.features.cold_migrate_host):
        return ()
    # (a retry's next host, ``items.another_host``, is the first of these)
    failed = set(item.data.get('failed_hosts', ())) | {item.source}
    hosts = [h for h in dict.fromkeys(item.candidates)
             if h and h not in failed]
    if item.data.get('anti_affinity'):
        hosts = hosts[:1]
    return tuple(hosts)


def pick(slots, ready, snap, ctx, now, timeout_of):
    """The first of the ``ready`` items (queue order) that gets a slot, or
    None; its chosen destination is ``item.data['dest_host']``.  An item
    that has waited for a slot longer than its own timeout (``timeout_of``)
    while nothing moved (``Slots.moment``: no move of ours or the cloud's
    started or ended) is marked ``item.data['slot_overdue']`` (the executor
    ends it ``timeout``, never started): a migration that holds its source
    or every destination and never ends (another tool's) bounds the wait;
    a queue that moves does not."""
    migrations = snap.all_migrations if snap is not None else ()
    moment = None
    for item in ready:
        live = 'migration' not in getattr(item.action, 'migration_types',
                                          ())
        ok, found = slots.take(item, migrations,
                               destinations(ctx, item, live))
        if ok:
            item.data['dest_host'] = found
            for key in ('slot_since', 'slot_moment'):
                item.data.pop(key, None)
            return item
        if moment is None:   # only when something waits
            moment = slots.moment(migrations)
        if item.data.get('slot_moment') != moment:
            item.data['slot_moment'] = moment
            item.data['slot_since'] = now
        if now - item.data['slot_since'] > timeout_of(item):
            item.data['slot_overdue'] = (
                'not started: no free slot within %ss (%s)' % (
                    timeutil.seconds_text(timeout_of(item)), found))
        elif found not in item.data.setdefault('slot_said', set()):
            # each reason once: a wait that goes from one reason to
            # another and back says nothing twice
            item.data['slot_said'].add(found)
            ctx.emit('progress', 'waiting for a slot: %s' % found, item)
    return None
