"""Execution: validate, then drain (S1-S4) or undrain (S6-S7) hosts."""

import contextlib
import dataclasses
import datetime
import logging

from osc_nodeops import errors
from osc_nodeops import timeutil
from osc_nodeops.ops import engine
from osc_nodeops.ops import lease
from osc_nodeops.ops import runtime as runtime_mod
from osc_nodeops.ops.cloud import calls
from osc_nodeops.ops.cloud import nova
from osc_nodeops.ops.drain import audit
from osc_nodeops.ops.drain import blame
from osc_nodeops.ops.drain import gather
from osc_nodeops.ops.drain import origin
from osc_nodeops.ops.drain import plan
from osc_nodeops.ops.drain import preflight
from osc_nodeops.ops.drain import services as nova_services
from osc_nodeops.ops.engine import slots as slots_mod
from osc_nodeops.ops.engine import wave

LOG = logging.getLogger(__name__)

BLOCK_MIGRATION_CHOICES = ('auto', 'yes', 'no')


@dataclasses.dataclass
class HostReport(runtime_mod.Report):
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
    audit: object = None  # audit.Audit, after the moves



def _context(compute, host, features, opts, events, target, runtime=None):
    return engine.Context(
        compute, host, features=features, target_host=target,
        options={'block_migration': opts.block_migration,
                 'stall_timeout': opts.stall_timeout}, events=events,
        runtime=runtime)


def check_arguments(hosts, opts):
    """``errors.UsageError`` for arguments that do not go together: judged
    from the request alone, before any cloud call (the command calls it
    before it touches the cloud)."""
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
    if opts.source_slots < 1 or opts.dest_slots < 1:
        raise errors.UsageError('--source-slots and --dest-slots must be '
                                'at least 1')
    if not hosts:
        raise errors.UsageError('name at least one host')
    if not all(host and host.strip() for host in hosts):
        raise errors.UsageError('a host name is empty')
    if len(set(hosts)) != len(hosts):
        raise errors.UsageError('a host is named twice')
    if opts.target_host and opts.target_host in hosts:
        raise errors.UsageError('--target-host %s is one of the hosts being '
                                'drained' % opts.target_host)


def validate(compute, hosts, opts):
    """Check every input before changing anything; return the services.

    ``errors.UsageError`` for arguments that do not go together
    (``check_arguments``), ``errors.NotFound`` for a host without
    nova-compute, ``errors.Refused`` for a target the scheduler would
    refuse.
    """
    check_arguments(hosts, opts)
    services = {}
    for host in hosts:
        services[host] = nova_services.compute_service(compute, host)
    if opts.target_host:
        target = nova_services.compute_service(compute, opts.target_host)
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
        for srv in calls.call_with_retry(lambda: list(compute.servers(
                details=True, all_projects=True, compute_host=host))):
            names.add(srv.id)
            if srv.name:
                names.add(srv.name)
    unknown = [e for e in exclude if e not in names]
    if unknown:
        raise errors.NotFound('--exclude %s: no such server on %s' % (
            unknown[0], ', '.join(hosts)))



def _planned_destination(items, destination):
    """A dry run's rows name the destination where it is known (undrain:
    the host; drain: --target-host, else the pre-flight's landing), not
    None."""
    for item in items:
        if item.action is not None and item.destination is None:
            item.destination = destination or item.landing


def _queue_places(items):
    """Each move's place in its source's queue (1: the first to start;
    the slots let ``--source-slots`` of them run at once): the plan's
    Queue column."""
    places: dict = {}
    for item in items:
        if item.action is not None and not item.adopt:
            places[item.source] = places.get(item.source, 0) + 1
            item.data['queue'] = places[item.source]


def fleet_for(compute, hosts, opts, features, runtime=None):
    """The poll and the slot pool the drains (or undrains) of ``hosts``
    share."""
    runtime = runtime or runtime_mod.Runtime()
    return wave.Fleet(
        wave.WavePoll(compute, hosts, features, opts.poll_interval,
                      clock=runtime.clock, now=runtime.now),
        slots_mod.Slots(opts.source_slots, opts.dest_slots), gather.Pool())


def drain_host(compute, host, service, opts, features=None, events=None,
               reason_default=None, runtime=None,
               taken_over_since=None, conn=None, draining=(), held=None,
               fleet=None):
    """S1-S4 for one host.  Returns a ``HostReport``.

    ``held``: a ``lease.Lease`` of ``host`` the caller holds (and releases);
    else the drain takes one and releases it at its end (left to expire
    when the run ends in an exception or a second Ctrl-C).
    ``taken_over_since``: when the run whose lease was taken over started
    (else from ``held``).  ``conn`` (a Connection):
    run the pre-flight (blockers, capacity) on the plan; ``draining``:
    every host of this run (not candidates).  ``fleet``: the poll and slots
    it shares with the other hosts of a wave drained at once (else its
    own)."""
    features = features or nova.Features.from_proxy(compute)
    ctx = _context(compute, host, features, opts, events, opts.target_host,
                   runtime)
    ctx.preflight = (conn, tuple(draining) or (host,))
    if opts.dry_run:
        return _drain_host(ctx, compute, host, service, opts, features,
                           'dry run: service left %s' % service.status,
                           fleet=fleet)
    own = held is None
    if own:
        held = lease.Lease(compute, host, kind='drain',
                           owner=nova_services.lease_owner(),
                           break_lease=getattr(opts, 'break_lease', False),
                           events=events, runtime=runtime).acquire()
    if taken_over_since is None and held.took is not None:
        taken_over_since = timeutil.parse_time(held.took.since)
    abandoned = True  # an exception: leave the lease to expire
    try:
        held.check()
        # Read after the lease is ours: what another run did before counts.
        service = nova_services.compute_service(compute, host)
        note = nova_services.disable_service(
            ctx, service, opts.reason,
            reason_default or nova_services.default_reason())
        ctx.emit('service', '%s nova-compute %s' % (host, note))
        report = _drain_host(ctx, compute, host, service, opts, features,
                             note, held.check, taken_over_since, fleet)
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
                 'expires at %s' % (held.host, errors.one_line(
                     exc, style=errors.STATUS),
                                   held.expires_text()))


def _drain_host(ctx, compute, host, service, opts, features, note,
                guard=None, taken_over_since=None, fleet=None):
    since = timeutil.utcnow() - datetime.timedelta(hours=1)
    own = fleet is None
    fleet = fleet or fleet_for(compute, [host], opts, features,
                               ctx.runtime)
    poller = wave.WaveHostPoller(compute, host, fleet.poll, features,
                                 since=since)
    snap = poller.snapshot(full=True, each=calls.call_with_retry)
    items = plan.plan_drain(ctx, snap, opts)
    earlier = []
    if taken_over_since is not None and not opts.dry_run:
        planned = {i.id for i in items}
        earlier = [i for i in plan.moved_by_stopped_run(ctx, snap, host,
                                                        taken_over_since)
                   if i.id not in planned]
    # A wave's hosts pack onto one pool (their landings spread over the
    # candidates; placement read once for all of them).
    misfits, notes = run_preflight(ctx, host, items, opts, features,
                                   pool=fleet.pool)
    if misfits and (opts.allow_partial or not opts.dry_run):
        # A real run after the pre-pass (drain_hosts) said it fits: the
        # cloud changed meanwhile; what no longer fits stays.
        preflight.partial(misfits)
    moving = sum(1 for i in items if i.action)
    ctx.emit('plan', '%s: %d server(s), %d to move, %d skipped' % (
        host, len(items), moving, len(items) - moving))
    report = HostReport(host, items, service_note=note,
                        preflight_notes=notes)
    _queue_places(items)
    if opts.dry_run:
        engine.settle(items, True)
        _planned_destination(items, opts.target_host)
        blame.assign_blame(ctx, items, dry_run=True)
        report.ok = all((i.action and i.fits is not False)
                        or opts.allow_skipped for i in items)
        report.api_calls = poller.calls
        return report
    executor = engine.Executor.from_options(ctx, poller, opts, guard=guard,
                                            slots=fleet.slots)
    fleet.register(executor.interrupts)
    # No initial snapshot: the first starts count the slots on a poll of
    # the cloud (the plan's listing saw this host's migrations only).
    executor.run(items)
    if own:   # the poll was this host's alone
        poller.calls += fleet.poll.calls
    items.extend(earlier)   # rows, not work: the stopped run did them
    engine.settle(items, False)
    report.interrupted = executor.interrupts.interrupted
    report.error = executor.stopped_by
    if executor.interrupts.abandon:
        # A second Ctrl-C: leave now with what is known (no re-list).
        report.abandoned = True
        report.api_calls = poller.calls
        report.ok = False
        return report
    # S4: re-list the host.
    try:
        remaining = calls.call_with_retry(poller.list_servers)
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
                origin.clear_intent(ctx, item)
            except Exception as exc:
                LOG.debug('clearing the marker failed', exc_info=True)
                item.message += '; clearing %s failed: %s' % (
                    origin.MARKER_KEY, errors.one_line(
                        exc, style=errors.STATUS))
    blame.assign_blame(ctx, items)
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
                reason_default=None, runtime=None, reports=None,
                conn=None, at_once=False, refuse_skips=False):
    """Drain several hosts one after the other (rolling), or ``at_once``
    (a wave of ``compute node maintain``: each in a thread of its own, one
    poll and one slot pool for all, ``drain_at_once``).

    Every host is disabled first (S1), so the scheduler does not send the
    servers of the first host to the next one.  Stops after a host whose
    drain was interrupted or ended in an error.  Returns the ``HostReport``
    list (``reports``, appended to as each host is done, so that the
    caller keeps them when a later host raises).

    With ``conn``, a pre-flight first (nothing changed): when a server of
    any host would not fit the rest of the cloud, the drain refuses (the
    reports say which, ``refused``) unless ``opts.allow_partial``; with
    ``refuse_skips`` (a wave of ``maintain`` without ``--allow-skipped``)
    also when a server would stay on its host (a blocker, an exclude).
    It runs in the leases' settle wait (after their entries are written,
    before they are read back): a refusal puts the entries back as they
    were, so that nothing has changed.
    """
    features = features or nova.Features.from_proxy(compute)
    reason_default = reason_default or nova_services.default_reason()
    events = SayOnce.wrap(events)
    reports = [] if reports is None else reports
    if opts.dry_run:  # no lease, nothing changed
        for host in hosts:
            reports.append(drain_host(
                compute, host, services[host], opts, features=features,
                events=events, runtime=runtime, conn=conn,
                draining=hosts))
        return reports
    # Every lease before anything changes, one settle wait for all, and
    # the capacity pre-pass (read-only) inside that wait.
    taking = lease.write_all([lease.Lease(
        compute, host, kind='drain', owner=nova_services.lease_owner(),
        break_lease=getattr(opts, 'break_lease', False), events=events,
        runtime=runtime) for host in hosts])
    try:
        refused = None
        if conn is not None and (refuse_skips or not opts.allow_partial):
            refused = refuse_before(compute, hosts, services, opts,
                                    features, events, conn, refuse_skips)
    except BaseException:
        taking.withdraw()
        raise
    if refused:
        taking.withdraw()
        reports.extend(refused)
        return refused
    held: dict = {}
    current = None  # the host whose drain raised: its lease is left
    try:
        held.update((lk.host, lk) for lk in taking.hold())
        for host in hosts[1:]:
            held[host].check()
            # The event carries its host (``--events`` readers filter by it)
            ctx = _context(compute, host, features, opts, events, None,
                           runtime)
            note = nova_services.disable_service(
                ctx, nova_services.compute_service(compute, host),
                opts.reason, reason_default)
            ctx.emit('service', '%s nova-compute %s' % (host, note))
        if at_once:
            # Threads install no SIGINT handler: the fleet passes Ctrl-C
            # on to each host's executor.
            runtime = dataclasses.replace(runtime or runtime_mod.Runtime(),
                                          handle_sigint=False)
            fleet = fleet_for(compute, hosts, opts, features, runtime)
            reports.extend(drain_at_once(
                hosts, fleet, lambda host: drain_host(
                    compute, host, services[host], opts, features=features,
                    events=events, reason_default=reason_default,
                    runtime=runtime, conn=conn, draining=hosts,
                    held=held[host], fleet=fleet),
                lambda host, report: end_lease(_context(
                    compute, host, features, opts, events, None, runtime),
                    held.pop(host), report.abandoned)))
            return reports
        for host in hosts:
            current = host
            report = drain_host(compute, host, services[host], opts,
                                features=features, events=events,
                                reason_default=reason_default,
                                runtime=runtime, conn=conn,
                                draining=hosts, held=held[host])
            current = None
            reports.append(report)
            end_lease(_context(compute, host, features, opts, events, None,
                               runtime), held.pop(host), report.abandoned)
            if report.interrupted or report.error:
                break
    finally:
        for host, rest in held.items():  # not reached: released
            end_lease(_context(compute, host, features, opts, events, None,
                               runtime), rest, abandoned=host == current)
    return reports


def drain_at_once(hosts, fleet, drain_one, release):
    """Drain ``hosts`` (disabled, leased) at the same time: one thread
    each (``drain_one(host)``), sharing ``fleet`` (one poll of the cloud
    per interval for all of them, one slot pool).  Each host's failure is
    its own: an error in one host's drain is its report's ``error`` (its
    lease left to expire, as when a serial drain raises), the others
    finish.  Returns the reports in the order of ``hosts``, each passed to
    ``release(host, report)`` as it is known."""
    done = fleet.run({host: (lambda host=host: drain_one(host))
                      for host in hosts})
    reports = []
    for host in hosts:
        report, exc = done[host]
        if report is None:
            report = HostReport(host, [], ok=False, abandoned=True,
                                error='%s: %s' % (host, errors.one_line(exc)))
        reports.append(report)
        release(host, report)
    return reports


def run_preflight(ctx, host, items, opts, features, pool=None):
    """Blockers and capacity onto ``items`` (``preflight.py``).

    Returns ``(misfits, notes)``; nothing when the drain has no
    connection for it (``ctx.preflight`` unset)."""
    conn, draining = getattr(ctx, 'preflight', (None, ()))
    if conn is None:
        return [], []
    servers = [i.server for i in items]
    cloud = gather.gather(
        conn, host, servers, features=features, draining=draining,
        target_host=opts.target_host, block_migration=opts.block_migration,
        pool=pool)
    with pool.packing if pool is not None else contextlib.nullcontext():
        misfits = preflight.apply(items, cloud, target_host=opts.target_host,
                                  shared=pool is not None)
        for item in items:
            item.candidates = preflight.candidates_for(item, cloud)
    for text in cloud.notes:  # about the cloud, the same for every host
        ctx.emit('preflight', text)
    for item in items:
        for r in item.blockers:
            ctx.emit('preflight', '%s%s' % (r, ' [blocks %s]' % '+'.join(
                r.blocks) if r.blocks else ''), item=item, code=r.code)
        if item.fits is False:
            ctx.emit('preflight', str(item.capacity), item=item,
                     code=item.capacity.code)
    return misfits, cloud.notes


class SayOnce(object):
    """The events of one drain run with each pre-flight note once.

    A real drain plans every host twice: the capacity pre-pass
    (``refuse_before``, all hosts on one pool, before anything
    changes) and then each host's own plan, just before its moves; both
    find the same notes.  The first to find a note says it (the pre-pass:
    before anything changes); a host's plan says only what is new (the
    cloud changed meanwhile).  A note is its server and its text."""

    def __init__(self, events):
        self.events = events
        self._said: set = set()

    def __call__(self, event):
        if getattr(event, 'kind', None) == 'preflight':
            key = (getattr(event.item, 'id', None), event.message)
            if key in self._said:
                return
            self._said.add(key)
        self.events(event)

    @classmethod
    def wrap(cls, events):
        return events if events is None or isinstance(events, cls) \
            else cls(events)


def stays(report):
    """The items of a plan that would stay on their host (a blocker, an
    exclude, a skip: no method)."""
    return [i for i in report.items if i.action is None]


def refuse_before(compute, hosts, services, opts, features, events, conn,
                  refuse_skips=False):
    """The pre-pass of a real drain: plan every host as a dry run would,
    packing all of them onto one pool.  Returns the reports (refused,
    nothing changed) when something would not fit (unless
    ``opts.allow_partial``) or, ``refuse_skips``, when a server would stay
    (``stays``); else None."""
    plan_opts = dataclasses.replace(opts, dry_run=True)
    pool = gather.Pool()
    reports: list = []
    misfit = 0
    for host in hosts:
        ctx = _context(compute, host, features, plan_opts, events,
                       opts.target_host)
        ctx.preflight = (conn, tuple(hosts))
        poller = engine.HostPoller(compute, host, features)
        try:
            snap = poller.snapshot(full=True, each=calls.call_with_retry)
            items = plan.plan_drain(ctx, snap, plan_opts)
            misfits, notes = run_preflight(ctx, host, items, plan_opts,
                                           features, pool=pool)
        except Exception as exc:
            # The drain of that host meets (and reports) it in its turn;
            # the hosts before it are still drained.
            LOG.debug('pre-flight failed', exc_info=True)
            ctx.emit('warning', '%s: pre-flight not done (%s)' % (
                host, errors.one_line(exc)))
            continue
        if opts.allow_partial:  # what does not fit would stay
            preflight.partial(misfits)
        else:
            misfit += len(misfits)
        engine.settle(items, True)
        reports.append(HostReport(host, items, preflight_notes=notes,
                                  api_calls=poller.calls))
    staying = sum(len(stays(r)) for r in reports) if refuse_skips else 0
    if not misfit and not staying:
        return None
    for report in reports:
        report.ok = False
        report.refused = True
        report.service_note = (
            'refused: %d server(s) would not fit the rest of the cloud; '
            'nothing changed (--allow-partial moves what fits)' % misfit
            if misfit else 'refused: %d server(s) would stay on their '
            'host; nothing changed' % staying)
        for item in report.items:
            if item.action is not None:
                item.result = engine.NOT_STARTED
            if item.fits is False:
                item.message = str(item.capacity)
    ctx.emit('refused', reports[0].service_note)
    return reports


def list_drained_from(compute, host):
    """Every server (all projects) whose recorded origin is ``host``."""
    return [s for s in calls.call_with_retry(
        lambda: list(compute.servers(details=True, all_projects=True)))
        if (s.metadata or {}).get(origin.ORIGIN_KEY) == host]


def undrain_host(compute, host, service, opts, features=None, events=None,
                 runtime=None, held=None, fleet=None):
    """S6 (and S7 with ``opts.migrate_back``) for one host.

    The host's lease is taken before the enable and released after the
    last move home (``held``: one the caller holds and releases).
    ``fleet``: a ``wave.Fleet`` whose Ctrl-C reaches its moves (an undrain
    run in a thread of a maintain wave)."""
    features = features or nova.Features.from_proxy(compute)
    ctx = _context(compute, host, features, opts, events, host, runtime)
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
                             servers, None)
    own = held is None
    if own:
        held = lease.Lease(compute, host, kind='undrain',
                           owner=nova_services.lease_owner(),
                           break_lease=getattr(opts, 'break_lease', False),
                           events=events, runtime=runtime).acquire()
    abandoned = True
    try:
        report = _undrain_host(ctx, compute, host, service, opts, features,
                               servers, held, fleet)
        abandoned = report.abandoned
        return report
    finally:
        if own:  # held through the moves home, released at the end
            end_lease(ctx, held, abandoned)


def _clear_home_records(ctx, items, host):
    """The servers already home: their origin records go."""
    for item in items:
        if item.action is None and item.data.get('home'):
            try:
                origin.clear_origin(ctx, item)
                item.message = 'already on %s; origin record cleared' % host
            except Exception as exc:
                item.message = ('already on %s; clearing the origin record '
                                'failed: %s' % (host, errors.one_line(
                                    exc, style=errors.STATUS)))


def _undrain_host(ctx, compute, host, service, opts, features, servers,
                  held, fleet=None):
    if held is not None:
        held.check()
        # Read after the lease is ours: what another run did before counts.
        service = nova_services.compute_service(compute, host)
    if opts.dry_run:
        note = 'dry run: service left %s' % service.status
    elif opts.keep_disabled:
        note = 'kept %s (--keep-disabled)' % service.status
    else:
        note = nova_services.enable_service(ctx, service)
    ctx.emit('service', '%s nova-compute %s' % (host, note))
    report = HostReport(host, [], service_note=note)
    if not opts.migrate_back:
        return report
    since = timeutil.utcnow() - datetime.timedelta(hours=1)
    own = fleet is None or fleet.poll is None
    shared = fleet_for(compute, [host], opts, features, ctx.runtime) \
        if own else fleet
    poller = plan.UndrainPoller(compute, host, features, since=since,
                                shared=shared.poll)
    snap = poller.snapshot(full=True, each=calls.call_with_retry)
    items = plan.plan_undrain(ctx, snap, servers, opts)
    poller.items = items
    report.items = items
    ctx.emit('plan', '%s: %d server(s) recorded as from here, %d to move '
             'back' % (host, len(items), sum(1 for i in items if i.action)))
    _queue_places(items)
    if opts.dry_run:
        engine.settle(items, True)
        _planned_destination(items, host)
        report.ok = all(i.action or i.success_if_skipped or opts.allow_skipped
                        for i in items)
        return report
    _clear_home_records(ctx, items, host)
    # The slots count every unfinished migration of the cloud (the poll's)
    # and the moves of the run in flight (a maintain wave's undrains share
    # them): the moves home leave many hosts.
    executor = engine.Executor.from_options(
        ctx, poller, opts, guard=held.check, slots=shared.slots)
    if fleet is not None:   # its Ctrl-C reaches the moves
        fleet.register(executor.interrupts)
    # No initial snapshot: the plan's listing saw this host's migrations
    # only; the first starts count the slots on a poll of the cloud.
    executor.run(items)
    if own:   # the poll was this host's alone
        poller.calls += shared.poll.calls
    engine.settle(items, False)
    report.interrupted = executor.interrupts.interrupted
    report.error = executor.stopped_by
    report.abandoned = executor.interrupts.abandon
    report.api_calls = poller.calls
    report.ok = not report.error and not report.interrupted and all(
        i.ok or (i.action is None and opts.allow_skipped) for i in items)
    return report
