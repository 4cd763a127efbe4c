"""``recover-all --dead --via-db``: the guide's legacy path (S20-S22).

1. The same service checks as the evacuate path (the dead host's
   nova-compute must be down, or forced down with the fenced confirmation;
   the target's must be up).
2. ``osc_nodeops.db.hostmove`` plans the move (dry run, the default) or
   applies it (``--execute``) with a journal; ``--undo JOURNAL`` reverts.
3. After the move, each server that was running (ACTIVE, or ERROR) is hard
   rebooted through the API on the new host and waited for with the engine
   (S22); SHUTOFF servers are moved and left stopped (``--all`` starts
   them too).  Volumes are re-attached on request (S18).

Placement: before the move each server's allocation is read and planned
(``ops/cloud/placement.py``: the dead host's provider is replaced by the target
host's); the plan goes into the journal with the rows; right after the
commit, before the reboots, each allocation is moved through placement's
API with its consumer generation.  ``--undo`` checks every allocation
first (one changed by someone else refuses the whole undo, nothing
changed), puts the rows back, then the allocations.
"""

import dataclasses
import datetime
import os

from openstack.compute.v2 import server as _server

from osc_nodeops import errors
from osc_nodeops import timeutil
from osc_nodeops.db import hostmove
from osc_nodeops.db import journal as journal_mod
from osc_nodeops.db import url as db_url
from osc_nodeops.ops import engine
from osc_nodeops.ops import fencing
from osc_nodeops.ops import runtime
from osc_nodeops.ops.cloud import calls
from osc_nodeops.ops.cloud import nova
from osc_nodeops.ops.cloud import placement
from osc_nodeops.ops.recover import common
from osc_nodeops.ops.recover.reboot import HARD_REBOOT

#: Where a database URL comes from (``--nova-db URL`` / ``--nova-conf``).
DBSource = db_url.Source
#: A URL from the command line whose repr() hides the password.
SecretURL = db_url.SecretURL


class DBPlanItem(engine.PlanItem):
    """A row for the DB move of one server (no engine action)."""

    method_name = 'db-move'

    @property
    def method(self):
        return self.method_name


class AllocationItem(engine.PlanItem):
    """A row for the placement allocation of one server (no engine
    action): planned, moved, skipped (nothing to move) or failed."""

    method_name = 'move-allocation'

    @property
    def method(self):
        return self.method_name

    @property
    def ok(self):
        if self.result == engine.SKIPPED:
            return self.success_if_skipped
        return self.result in (engine.PLANNED, 'moved')


def _placement_plan(conn, plan):
    """``(client, moves, names)`` for the instances of a DB move plan, or
    ``(None, [], {})`` when there is nothing to plan."""
    if not plan.instances or plan.conflicts:
        return None, [], {}
    client = placement.Client(conn.placement)
    client.check_version()
    target = client.provider(plan.target_node)
    names = {target: plan.target_node}
    moves = []
    by_node: dict[str, list[str]] = {}
    for inst in plan.instances:
        by_node.setdefault(inst['before']['node'], []).append(inst['uuid'])
    for node, uuids in sorted(by_node.items()):
        source = client.provider(node)
        names[source] = node
        moves += placement.plan(client, uuids, source, target)
    return client, moves, names


def _allocation_items(moves, names, servers, source, result):
    items = []
    for move in moves:
        item = AllocationItem(servers.get(move.consumer), source=source)
        item.message = move.describe(names)
        if move.problem:
            item.result = engine.SKIPPED
            item.message = move.problem + '; ' + item.message
        elif not move.movable:
            item.result = engine.SKIPPED
            item.success_if_skipped = True
            item.message = move.note or item.message
        else:
            item.result = result
        items.append(item)
    return items


def _move_allocations(ctx, client, moves, items, moved_uuids):
    """Right after the commit: move each planned allocation."""
    for move, item in zip(moves, items):
        if item.result != 'moving':
            continue
        if move.consumer not in moved_uuids:
            item.result = engine.SKIPPED
            item.success_if_skipped = True
            item.message = 'row not moved: allocation left as it is'
            continue
        try:
            outcome = placement.apply(client, move)
        except Exception as exc:
            item.result = engine.FAILED
            item.message = 'not moved: %s; %s' % (errors.one_line(exc),
                                                  item.message)
        else:
            item.result = 'moved'
            if outcome == 'gone':
                item.result = engine.SKIPPED
                item.success_if_skipped = True
                item.message = 'no allocation left (server deleted?)'
            elif outcome == 'already':
                item.message += ' (already there)'
        item.destination = ctx.host if item.result == 'moved' else None
        ctx.emit(item.result, item.message, item)


def _server_rows(compute, host, uuids):
    """The API's view of the servers the DB move touches, by uuid."""
    servers = {s.id: s for s in calls.call_with_retry(lambda: list(
        compute.servers(details=True, all_projects=True,
                        compute_host=host)))}
    out = {}
    for uuid in uuids:
        srv = servers.get(uuid)
        if srv is None:
            try:
                srv = calls.call_with_retry(
                    lambda: compute.get_server(uuid))
            except Exception:
                # a row nova's API does not know (no instance mapping)
                srv = _server.Server(id=uuid, status='UNKNOWN')
        out[uuid] = srv
    return out


def describe_statements(plan):
    """Statements as text for people: SQL with its parameters."""
    lines = []
    for st in plan.statements:
        lines.append('%s DB: %s  -- parameters: %s' % (
            st.db, st.sql, ', '.join(repr(p) for p in st.params)))
    return lines


def _move_items(plan, servers, result, journal=None):
    items = []
    ports: dict[str, list[str]] = {}
    for b in plan.bindings:
        ports.setdefault(b['device_id'], []).append(b['port_id'])
    levels: dict[str, int] = {}
    for lv in plan.levels:
        levels[lv['port_id']] = levels.get(lv['port_id'], 0) + 1
    for inst in plan.instances:
        srv = servers.get(inst['uuid'])
        item = DBPlanItem(srv, source=plan.old_host)
        item.destination = plan.new_host
        item.result = result
        mine = ports.get(inst['uuid'], [])
        nlev = sum(levels.get(p, 0) for p in mine)
        item.message = ('instances.host/node/compute_id %s -> %s (node %s); '
                        '%d port binding(s), %d binding level(s)' % (
                            inst['before']['host'], plan.new_host,
                            plan.target_node, len(mine), nlev))
        if journal:
            item.message += '; journal %s' % journal
        items.append(item)
    return items


def _excluded_items(plan, servers):
    """Rows of the instances ``--exclude`` kept out of the move."""
    items = []
    for inst in plan.excluded:
        item = DBPlanItem(servers.get(inst['uuid']), source=plan.old_host,
                          reason='excluded (--exclude): its rows, ports and '
                          'allocation left as they are',
                          success_if_skipped=True)
        item.result = engine.SKIPPED
        items.append(item)
    return items


def _resolve(source, what):
    return (source or DBSource(what=what)).resolve()


def recover_via_db(conn, host, opts, nova_url=None, neutron_url=None,
                   journal_path=None, features=None, events=None,
                   runtime=None, guard=None, db_mode='auto', connector=None,
                   before_commit=None):
    """``recover-all --dead --via-db``; the URLs default to the request's
    ``nova_db`` / ``neutron_db`` sources, the journal to ``opts.journal``
    or a fresh path under ``$XDG_STATE_HOME``."""
    compute = conn.compute
    common.validate(opts, host)
    nova_url = nova_url or _resolve(opts.nova_db, 'nova')
    neutron_url = neutron_url or _resolve(opts.neutron_db, 'neutron')
    journal_path = (journal_path or opts.journal
                    or journal_mod.default_path(host))
    features = features or nova.Features.from_proxy(compute)
    dry = not opts.execute
    service, note, fenced = common.check_host(compute, host, opts,
                                               force_down=not dry)
    ctx = common.make_context(conn, opts.target_host, features, opts, events,
                              runtime)
    _say_unfinished(ctx, os.path.dirname(os.path.abspath(journal_path)))
    ctx.emit('service', note)
    report = common.Report(host, [], notes=[note])
    db = dict(nova_url=nova_url, neutron_url=neutron_url, mode=db_mode,
              connector=connector)
    if dry:
        _dry_run(conn, ctx, report, host, opts, db)
        report.items[:0] = [fencing.disable_dead_host(ctx, host, fenced,
                                                      True)]
        return report
    disabled = fencing.disable_dead_host(ctx, host, fenced, False)
    moved = _execute(conn, ctx, report, host, opts, db, journal_path,
                     before_commit)
    report.items.insert(0, disabled)
    reboot = _reboot_moved(ctx, report, moved, host, opts, features, guard)
    if opts.reattach_volumes and not report.interrupted:
        report.items += common.reattach(
            ctx, [i for i in reboot if i.ok and i.action], opts, features,
            guard=guard)
    report.ok = not report.interrupted and all(
        i.ok or isinstance(i, DBPlanItem) for i in report.items)
    return report


def _say_unfinished(ctx, directory):
    """On start: a move that stopped half-way (Ctrl-C or a kill between
    the two commits) left its journal; say so, with the way back."""
    for path, state, old, new in journal_mod.unfinished(directory):
        ctx.emit('journal', 'unfinished DB move %s -> %s: %s (%s: %s); '
                 'check the rows, then put them back with: openstack '
                 'server recover-all --undo %s' % (
                     old, new, path, state, journal_mod.UNFINISHED[state],
                     path))


def _plan(host, opts, db):
    return hostmove.plan(db['nova_url'], db['neutron_url'], host,
                         opts.target_host, mode=db['mode'],
                         connector=db['connector'], exclude=opts.exclude)


def _dry_run(conn, ctx, report, host, opts, db):
    """The statements on stderr, the rows planned; nothing changed."""
    plan = _plan(host, opts, db)
    for line in describe_statements(plan):
        ctx.emit('sql', line)
    for why in plan.conflicts:
        ctx.emit('conflict', why)
    servers = _server_rows(ctx.compute, host, plan.instance_uuids()
                           + plan.excluded_uuids())
    report.items = _move_items(plan, servers, engine.PLANNED)
    for item in report.items:
        if plan.conflicts:
            item.result = 'refused'
            item.message += '; ' + '; '.join(plan.conflicts)
    report.items += _excluded_items(plan, servers)
    _, moves, names = _placement_plan(conn, plan)
    allocations = _allocation_items(moves, names, servers, host,
                                    engine.PLANNED)
    report.items += allocations
    ctx.emit('plan', '%s -> %s: %d instance(s), %d port binding(s), '
             '%d binding level(s); dry run (--execute applies)' % (
                 host, opts.target_host, len(plan.instances),
                 len(plan.bindings), len(plan.levels)))
    report.ok = not plan.conflicts and all(i.ok for i in allocations)
    return report


def _execute(conn, ctx, report, host, opts, db, journal_path,
             before_commit):
    """S20/S21 in the databases, with the journal, then the placement
    allocations; the moved rows."""
    compute = ctx.compute
    preview = _plan(host, opts, db)
    servers_before = _server_rows(compute, host, preview.instance_uuids()
                                  + preview.excluded_uuids())
    client, moves, names = _placement_plan(conn, preview)
    ctx.emit('db', 'journal: %s' % journal_path)
    plan = hostmove.execute(db['nova_url'], db['neutron_url'], host,
                            opts.target_host, journal_path, mode=db['mode'],
                            connector=db['connector'], exclude=opts.exclude,
                            before_commit=before_commit,
                            journal_extra={'placement': {
                                'microversion': placement.MICROVERSION,
                                'names': names,
                                'consumers': [m.to_journal() for m in moves
                                              if m.movable]}})
    report.journal = journal_path if plan.instances else None
    for line in describe_statements(plan):
        ctx.emit('sql', line)
    for uuid in plan.instance_uuids():
        if uuid not in servers_before:
            servers_before.update(_server_rows(compute, opts.target_host,
                                               [uuid]))
    moved = _move_items(plan, servers_before, 'moved',
                        journal=report.journal)
    allocations = _allocation_items(moves, names, servers_before, host,
                                    'moving')
    _move_allocations(ctx, client, moves, allocations,
                      set(plan.instance_uuids()))
    report.items = list(moved) + _excluded_items(plan, servers_before) + \
        allocations
    return moved


def _reboot_moved(ctx, report, moved, host, opts, features, guard):
    """S22: hard reboot each moved server that was running, on the new
    host; the reboot items (also added to the report)."""
    reboot = []
    for item in moved:
        srv = item.server
        if srv.status in ('ACTIVE', 'ERROR') or (
                opts.all and srv.status == 'SHUTOFF'):
            reboot.append(engine.PlanItem(srv, HARD_REBOOT,
                                          source=host))
        elif srv.status == 'SHUTOFF':
            reboot.append(engine.PlanItem(
                srv, reason='was SHUTOFF: moved and left stopped (--all '
                'starts it)', source=host, success_if_skipped=True))
        else:
            reboot.append(engine.PlanItem(
                srv, reason='%s: moved, not rebooted' % srv.status,
                source=host))
    if reboot:
        since = timeutil.utcnow() - datetime.timedelta(hours=1)
        poller = engine.HostPoller(ctx.compute, opts.target_host, features,
                                   since=since)
        executor = common.make_executor(ctx, poller, opts, guard=guard)
        started = timeutil.utcnow()
        executor.run(reboot)
        engine.settle(reboot, False)
        common.explain_failures(ctx, reboot, started)
        report.interrupted = executor.interrupts.interrupted
        report.items += reboot
    return reboot


@dataclasses.dataclass
class UndoRequest(object):
    """``recover-all --undo JOURNAL`` and the DB sources; ``host``,
    ``dead`` and ``execute`` are there to be refused.  ``dry_run``: say
    what would be put back, change nothing."""

    journal: str
    nova_db: DBSource | None = None
    neutron_db: DBSource | None = None
    host: str | None = None
    dead: bool = False
    execute: bool = False
    dry_run: bool = False


@dataclasses.dataclass
class UndoRow(object):
    table: str
    restored: int
    already: int
    gone: int


@dataclasses.dataclass
class UndoReport(runtime.Report):
    journal: str
    rows: list
    ok: bool = True
    dry_run: bool = False


def _undo_placement_check(conn, doc, journal_path):
    """Read every recorded allocation before anything is put back:
    ``(client, todo records, counts)``; one changed by someone else since
    the move refuses the whole undo (``Refused``, nothing changed)."""
    records = (doc.get('placement') or {}).get('consumers') or []
    counts = {'restored': 0, 'already': 0, 'gone': 0}
    if not records or (doc.get('placement') or {}).get('state') == 'undone':
        return None, [], counts
    if conn is None:
        raise errors.UsageError('journal %s records placement allocations: '
                                'undo needs the cloud' % journal_path)
    client = placement.Client(conn.placement)
    client.check_version()
    todo, changed = [], []
    for record in records:
        state = placement.classify_undo(client, record)
        if state == 'todo':
            todo.append(record)
        elif state == 'changed':
            changed.append(record['consumer'])
        else:
            counts[state] += 1
    if changed:
        raise errors.Refused(
            'the placement allocation of %s changed since the move; nothing '
            'was put back' % ', '.join(changed))
    return client, todo, counts


UNDO_KINDS = (('instances', 'instances', 'instance'),
              ('bindings', 'ml2_port_bindings', 'port binding'),
              ('levels', 'ml2_port_binding_levels', 'port binding level'))


def undo(request, db_mode='auto', connector=None, events=None, conn=None):
    """``--undo JOURNAL``: put the DB rows back, then the placement
    allocations the move took along (``conn``); an :class:`UndoReport`.
    With ``request.dry_run`` the same checks run, each row and allocation
    that would go back is said (``events``), and nothing is written: no
    SQL write, no placement write, the journal as it was."""
    if request.host or request.dead or request.execute:
        raise errors.UsageError(
            '--undo takes only the journal and the DB options (and '
            '--dry-run)')
    nova_url = _resolve(request.nova_db, 'nova')
    neutron_url = _resolve(request.neutron_db, 'neutron')
    doc = journal_mod.read(request.journal)
    client, todo, counts = _undo_placement_check(conn, doc, request.journal)
    dry = request.dry_run
    if doc['state'] == 'undone' and client is not None:
        # the rows went back, the allocations did not (interrupted): only
        # the allocations are left to do
        result = hostmove.UndoResult()
    else:
        result = hostmove.undo(request.journal, nova_url, neutron_url,
                               mode=db_mode, connector=connector,
                               dry_run=dry)
    say = events or (lambda event: None)
    if dry:
        _say_undo_plan(say, doc, result, todo)
        counts['restored'] += len(todo)
    else:
        for record in todo:
            outcome = placement.restore(client, record)
            counts[{'done': 'restored'}.get(outcome, outcome)] += 1
        if client is not None:
            doc = journal_mod.read(request.journal)
            doc['placement']['state'] = 'undone'
            journal_mod.write(request.journal, doc)
    rows = [UndoRow(label, result.restored[kind], result.already[kind],
                    result.gone[kind]) for kind, label, _ in UNDO_KINDS]
    if (doc.get('placement') or {}).get('consumers'):
        rows.append(UndoRow('placement allocations', counts['restored'],
                            counts['already'], counts['gone']))
    say(runtime.Event('undo', '%s: %s -> %s %s' % (
        request.journal, doc['new_host'], doc['old_host'],
        'dry run, nothing changed' if dry else 'put back')))
    return UndoReport(request.journal, rows, dry_run=dry)


def _say_undo_plan(say, doc, result, todo):
    """A dry run of ``--undo``: one line per row and allocation that would
    go back."""
    what = {kind: text for kind, _, text in UNDO_KINDS}
    for kind, ident, now, back in result.todo:
        say(runtime.Event('undo', 'would put back %s %s: host %s -> %s' % (
            what[kind], ident, now, back) if kind == 'instances' else
            'would put back %s %s: %s -> %s' % (what[kind], ident, now,
                                                 back)))
    names = (doc.get('placement') or {}).get('names') or {}
    for record in todo:
        move = placement.Move(record['consumer'], record['after'],
                              record['before'])
        say(runtime.Event('undo', 'would put back the placement allocation '
                          'of %s: %s' % (record['consumer'],
                                         move.describe(names))))
