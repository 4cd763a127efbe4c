"""Whose problem each row shows (issue 12 item 6)."""

from osc_nodeops import errors
from osc_nodeops.ops import engine

# Each row says whose problem it shows (issue 12 item 6): ``pre-existing``
# (the server was ERROR, locked, busy or migrating before the drain, or a
# pre-flight reason that was there before stopped the move), ``move`` (the
# drain's move failed: nova's fault and the instance action's events say
# why) or nothing, None (nothing went wrong, or the operator chose the
# skip): empty in a table, null in ``-f json``, as every "nothing" is.

BLAME_PRE = 'pre-existing'
BLAME_MOVE = 'move'
BLAME_NONE: str | None = None

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
        parts.append('server not read: %s' % errors.one_line(
            exc, style=errors.STATUS))
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
                     errors.one_line(exc, style=errors.STATUS))
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
