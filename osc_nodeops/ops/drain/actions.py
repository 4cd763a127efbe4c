"""The drain's moves as engine ``Action``s: live, cold, stop-cold-start
and suspended-live, each recording the server's origin around its move."""

from osc_nodeops import timeutil
from osc_nodeops.ops import engine
from osc_nodeops.ops.drain import origin


class _OriginMixin(object):
    name: str   # the Action's name, from the class it is mixed into

    def __init__(self, record_origin_host=None, clear_origin_after=False):
        self.record_origin_host = record_origin_host
        self.clear_origin_after = clear_origin_after

    def _record(self, ctx, item):
        if self.record_origin_host:
            origin.mark_intent(ctx, item, self.record_origin_host, self.name)

    def finished(self, ctx, item):
        if self.record_origin_host:
            origin.record_origin(ctx, item, self.record_origin_host, self.name)
        if self.clear_origin_after:
            origin.clear_origin(ctx, item)


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
    # nova's queue (conductor, then max_concurrent_live_migrations): the
    # time spent there is not the move's (ladder.Ladder.running_time).
    queue_statuses = ('accepted', 'queued')
    reports_progress = True

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
    """The host a move names: ``--target-host``, else the one the slot
    scheduler chose when it started (``engine.slots``), else (a retry)
    another candidate than the ones that failed, when the cloud lets a
    move name a host (2.30 live without force, 2.56 cold); else None, the
    scheduler."""
    if ctx.target_host:
        return ctx.target_host
    host = item.data.get('dest_host') or item.data.get('retry_host')
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
                return engine.Check(engine.FATAL, 'did not stop in %ss '
                                    '(status %s)' % (
                                        timeutil.seconds_text(waited), getattr(
                                        srv, 'status', None)))
            return engine.Check(engine.PENDING, 'stopping')
        if phase == 'start':
            return self._restart(ctx, item, snap)
        check = super(RestoringColdMigrate, self).progress(ctx, item, snap)
        if check.state == engine.COMPLETE and phase == 'migrate':
            item.data['phase'] = 'start'
            item.data['start_from'] = snap.taken_at
            return self._restart(ctx, item, snap)
        return check

    def _restart(self, ctx, item, snap):
        """After the confirm, run the server again where it landed.

        Nova's compute saves the migration ``confirmed`` before the
        instance leaves VERIFY_RESIZE, so the record alone does not say
        the server can be started: wait for SHUTOFF with no task, start
        it once, then wait for ACTIVE (nova's own restart, the cold
        fallback of a running server, needs no start).  After
        ``start_grace`` it is left as it is and ``verify`` says so."""
        srv = ctx.api(ctx.compute.get_server, item.id)
        if srv.status == 'ACTIVE' and not srv.task_state:
            return engine.Check(engine.COMPLETE, 'started',
                                destination=srv.compute_host)
        if srv.status == 'SHUTOFF' and not srv.task_state and \
                not item.data.get('start_sent'):
            def start():
                ctx.compute.start_server(item.id)
                item.data['start_sent'] = True
            return engine.Check(engine.CALL, 'start again', call=start)
        waited = snap.taken_at - item.data.get('start_from', snap.taken_at)
        if waited > self.start_grace:
            return engine.Check(engine.COMPLETE, 'not running after %ss' %
                                timeutil.seconds_text(waited),
                                destination=srv.compute_host)
        return engine.Check(engine.PENDING, 'starting again (%s)' %
                            srv.status)

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
            item.id, host=destination_for(ctx, item, True),
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
                return engine.Check(engine.FAILED, 'did not resume in %ss' %
                                    timeutil.seconds_text(waited))
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
