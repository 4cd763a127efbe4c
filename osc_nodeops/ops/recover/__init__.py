"""Bring back the servers of a host: after a reboot (S9, S10) or after the
host died (S19, S20, S22), then re-attach volumes (S18) on request.

Everything runs on the drain engine (``ops/engine``): plan items, the
bounded executor, the host-wide poller, timeouts and retries.  The
modules:

``common``
    what the modes share: the request (``Options``), the ``Report``, the
    service checks, "stopped on purpose", nova's reasons for a failure;
``reboot``
    after a reboot: start, reboot or hard reboot each server on its host;
``evacuate``
    a dead host through the API: evacuate each server;
``via_db``
    a dead host by the guide's legacy path: move the rows in the
    databases, then hard reboot (``--via-db``); ``--undo JOURNAL`` puts
    them back.

:func:`run` is the one entry of ``server recover-all HOST`` and
:func:`undo` that of ``--undo JOURNAL``; the names the command layer and
the tests use are re-exported here.  The submodules never import this
one.
"""

import datetime

from osc_nodeops import errors
from osc_nodeops import timeutil
from osc_nodeops.ops import engine
from osc_nodeops.ops import fencing
from osc_nodeops.ops import lease
from osc_nodeops.ops.cloud import calls
from osc_nodeops.ops.cloud import nova
from osc_nodeops.ops.recover.common import check_host
from osc_nodeops.ops.recover.common import explain_failures
from osc_nodeops.ops.recover.common import make_context
from osc_nodeops.ops.recover.common import make_executor
from osc_nodeops.ops.recover.common import Options  # noqa
from osc_nodeops.ops.recover.common import reattach
from osc_nodeops.ops.recover.common import Report
from osc_nodeops.ops.recover.common import stopped_on_purpose  # noqa
from osc_nodeops.ops.recover.common import validate
from osc_nodeops.ops.recover.evacuate import plan_dead
from osc_nodeops.ops.recover.evacuate import RecoverPoller
from osc_nodeops.ops.recover.reboot import HARD_REBOOT  # noqa
from osc_nodeops.ops.recover.reboot import plan_reboot
from osc_nodeops.ops.recover.reboot import REBOOT  # noqa
from osc_nodeops.ops.recover.reboot import START  # noqa
from osc_nodeops.ops.recover.via_db import DBSource  # noqa
from osc_nodeops.ops.recover.via_db import recover_via_db
from osc_nodeops.ops.recover.via_db import SecretURL  # noqa
from osc_nodeops.ops.recover.via_db import undo  # noqa
from osc_nodeops.ops.recover.via_db import UndoReport  # noqa
from osc_nodeops.ops.recover.via_db import UndoRequest  # noqa


def run(conn, request, events=None, runtime=None):
    """``server recover-all HOST``: validate, then bring the servers back.

    Reboot mode, dead mode with evacuate, or (``via_db``) the legacy DB
    path of ``via_db``.  Returns a :class:`Report`; raises an
    ``errors.NodeOpsError`` before anything is changed when the request
    cannot be done.
    """
    if not request.host:
        raise errors.UsageError('a host is required (or --undo JOURNAL)')
    validate(request)
    held = guard = None
    if not (request.dry_run or (request.via_db and not request.execute)):
        # The host's lease (ops/lease.py): refused while another live run
        # holds it; checked again before each server.
        held = lease.Lease(conn.compute, request.host, kind='recover-all',
                           break_lease=request.break_lease,
                           events=events, runtime=runtime).acquire()
        guard = held.check
    try:
        if request.via_db:
            return recover_via_db(conn, request.host, request,
                                  events=events, runtime=runtime,
                                  guard=guard)
        return recover_host(conn, request.host, request, events=events,
                            runtime=runtime, guard=guard)
    finally:
        if held is not None:
            held.release()


def recover_host(conn, host, opts, events=None, runtime=None, guard=None):
    """Reboot mode (S9/S10) or dead mode with evacuate (S19-S20, S22)."""
    compute = conn.compute
    validate(opts, host)
    features = nova.Features.from_proxy(compute)
    service, note, fenced = check_host(compute, host, opts,
                                       force_down=not opts.dry_run)
    ctx = make_context(conn, host, features, opts, events, runtime,
                       target=opts.target_host)
    ctx.emit('service', note)
    since = timeutil.utcnow() - datetime.timedelta(hours=1)
    if opts.dead:
        poller: engine.HostPoller = RecoverPoller(
            compute, host, features, since=since,
            extra_hosts=[opts.target_host])
    else:
        poller = engine.HostPoller(compute, host, features, since=since)
    snap = poller.snapshot(full=True, each=calls.call_with_retry)
    items = (plan_dead if opts.dead else plan_reboot)(ctx, snap, opts)
    if isinstance(poller, RecoverPoller):
        # --dead: keep watching where earlier evacuations went
        poller.extra_hosts += sorted({
            i.last_migration.dest_compute for i in items
            if i.adopt and i.last_migration is not None
            and i.last_migration.dest_compute} - set(poller.extra_hosts))
    acting = sum(1 for i in items if i.action)
    ctx.emit('plan', '%s: %d server(s), %d to %s, %d left as they are' % (
        host, len(items), acting, 'evacuate' if opts.dead else 'bring back',
        len(items) - acting))
    report = Report(host, items, notes=[note])
    if fenced is not None:  # the dead host, disabled before any evacuation
        report.items = [fencing.disable_dead_host(
            ctx, host, fenced, opts.dry_run)] + items
    if opts.dry_run:
        engine.settle(items, True)
        report.ok = all(i.action or i.success_if_skipped for i in items)
        return report
    executor = make_executor(ctx, poller, opts, guard=guard)
    started = timeutil.utcnow()
    executor.run(items, initial_snapshot=snap)
    engine.settle(items, False)
    report.interrupted = executor.interrupts.interrupted
    if opts.reattach_volumes and not report.interrupted:
        report.items += reattach(
            ctx, [i for i in items if i.ok], opts, features, guard=guard)
    explain_failures(ctx, report.items, started)
    report.ok = not report.interrupted and all(
        i.ok for i in report.items)
    done = sum(1 for i in items if i.ok and i.action)
    ctx.emit('done', '%s: %d brought back, %d not' % (
        host, done, sum(1 for i in report.items if not i.ok)))
    return report
