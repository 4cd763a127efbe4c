"""``Action``: one method the executor runs on a plan item (see
doc/source/contributor/architecture.rst); ``MigrationAction``: the
bookkeeping of the methods that make a nova migration record."""

from osc_nodeops import timeutil
from osc_nodeops.ops.cloud import nova
from osc_nodeops.ops.engine import items


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
    # Statuses of a move waiting in nova's queue: not counted against its
    # timeout while the queue moves (ladder.Ladder.running_time).
    queue_statuses: tuple[str, ...] = ()
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
                return items.Check(
                    items.FAILED, 'no migration record appeared after %ss; '
                    'server still %s on %s' % (timeutil.seconds_text(waited),
                                               srv.status,
                                               srv.compute_host))
            return items.Check(items.PENDING,
                               'waiting for the migration record')
        return self.check_migration(ctx, item, snap, m)

    # A record completed while the server still shows on the source gets
    # this long to settle before verification calls it a failure.
    settle = 10.0

    def check_migration(self, ctx, item, snap, m):
        if m.status in self.done_statuses:
            if snap.host == item.source and snap.on_host(item.id):
                first = item.data.setdefault('done_seen', snap.taken_at)
                if snap.taken_at - first < self.settle:
                    return items.Check(
                        items.PENDING, 'migration %s %s; waiting for the '
                        'host to change' % (m.id, m.status))
            return items.Check(items.COMPLETE, m.status,
                               destination=m.dest_compute)
        if m.status in nova.MIGRATION_FAILED:
            srv = snap.server(item.id)
            where = (' (server %s on %s)' % (srv.status, srv.compute_host)
                     if srv is not None else '')
            # Aborted by the ladder or failed: a retry goes to another
            # host (Executor._retry_or_fail).
            return items.Check(items.FAILED, 'migration %s %s%s' % (
                m.id, m.status, where))
        self.watch_progress(ctx, item, snap, m)
        return items.Check(items.PENDING, 'migration %s %s' % (m.id, m.status))

    # Whether nova reports the bytes this kind of migration still has to
    # copy (a live migration: memory, and disk when it is copied).
    reports_progress = False

    def watch_progress(self, ctx, item, snap, m):
        """``--stall-timeout``: a running migration whose bytes still to
        copy (memory and disk) have not reached a new low for that long
        is stalled (a guest that dirties memory as fast as it is sent):
        ``item.data['stalled']`` says so, and the ladder takes its first
        step at once (``ladder.Ladder.check``).  One call per running
        migration per poll, only with the option."""
        stall = ctx.options.get('stall_timeout')
        if (not stall or not self.reports_progress or m.status != 'running'
                or not ctx.features.migration_progress
                or item.data.get('stalled')):
            return
        sm = ctx.api(ctx.compute.get_server_migration, m.id, item.id,
                     ignore_missing=True)
        parts = [getattr(sm, k, None) for k in (
            'memory_remaining_bytes', 'disk_remaining_bytes')] if sm else []
        if not parts or parts[0] is None:
            return
        left = sum(p or 0 for p in parts)
        low = item.data.get('progress_low')
        if low is None or left < low[0]:
            item.data['progress_low'] = (left, snap.taken_at)
            return
        if snap.taken_at - low[1] >= stall:
            note = ('stalled: %s MiB still to copy, no progress for %ss' % (
                left // (1024 * 1024),
                timeutil.seconds_text(snap.taken_at - low[1])))
            item.data['stalled'] = note
            item.step(note)
            ctx.emit('progress', note, item)

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
            return items.Check(items.FATAL, 'no longer on %s; not moving it '
                               'again' % item.source)
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
