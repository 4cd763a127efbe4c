"""The guide's legacy host move (runbook S20, S21) done safely.

Moves the live instances of OLD to NEW in the nova cell DB
(``instances.host``, and ``node``/``compute_id`` so the row matches NEW's
compute node) and the port bindings of *those instances' ports* from OLD to
NEW in the neutron DB (``ml2_port_bindings`` and
``ml2_port_binding_levels``).  Ports of OLD that belong to something else
(DHCP, routers) are not touched.

Every statement is parameterised: host names and IDs are data, never SQL.
Identifiers (schema names) come from validated URLs and are backtick-quoted.

Atomicity:

* both schemas on one server reached as one account: one connection, one
  transaction covers both (the guide's own queries assume this layout);
* otherwise two transactions; the rows are locked and updated in both
  before either commits, the second connection is pinged right before the
  first commit, and if the second commit fails the first is undone from the
  journal (compensation).

A journal of the previous values is written (and fsync'ed) before any
commit; :func:`undo` puts the values back from it.
"""

import collections

from osc_nodeops import errors as base_errors
from osc_nodeops.db import errors
from osc_nodeops.db import journal as journal_mod
from osc_nodeops.db import url as url_mod

Statement = collections.namedtuple('Statement', 'db sql params')


def _in(values):
    return ', '.join(['%s'] * len(values))


class _Tables(object):
    """Schema-qualified table names for one move."""

    def __init__(self, nova_schema, neutron_schema):
        n = url_mod.quote_schema(nova_schema)
        q = url_mod.quote_schema(neutron_schema)
        self.instances = n + '.`instances`'
        self.compute_nodes = n + '.`compute_nodes`'
        self.bindings = q + '.`ml2_port_bindings`'
        self.levels = q + '.`ml2_port_binding_levels`'
        self.ports = q + '.`ports`'


class _Session(object):
    """One or two PyMySQL connections with their transactions."""

    def __init__(self, nova_url, neutron_url, mode='auto', connector=None):
        self.nova_url = nova_url
        self.neutron_url = neutron_url
        if mode == 'auto':
            mode = 'single' if nova_url.same_server(neutron_url) else 'two'
        if mode not in ('single', 'two'):
            raise ValueError('mode must be auto, single or two')
        self.mode = mode
        self._connector = connector or (lambda u: u.connect())
        self.secrets = tuple(nova_url.secrets()) + tuple(
            neutron_url.secrets())
        self.nova = self._connector(nova_url)
        try:
            self.neutron = (self.nova if mode == 'single'
                            else self._connector(neutron_url))
        except Exception:
            self._close(self.nova)
            raise
        self.statements = []

    @property
    def single(self):
        return self.mode == 'single'

    def begin(self):
        self.nova.begin()
        if not self.single:
            self.neutron.begin()

    def run(self, which, sql, params=(), record=True):
        conn = self.nova if which == 'nova' else self.neutron
        if record:
            self.statements.append(Statement(which, sql, tuple(params)))
        try:
            with conn.cursor() as cur:
                cur.execute(sql, tuple(params))
                return cur.rowcount, cur.fetchall()
        except errors.DBError:
            raise
        except Exception as exc:
            raise errors.DBError(url_mod.scrub(
                '%s database: %s' % (which, base_errors.one_line(
                    exc, None, style=base_errors.NAMED)),
                self.secrets)) from None

    def identity(self, which):
        """Who answers on the WHICH connection: the server's host name,
        port and server id (MySQL and MariaDB both have them), so that an
        undo can tell it talks to the server the move changed."""
        _count, rows = self.run(
            which, 'SELECT @@hostname, @@port, @@server_id', record=False)
        hostname, port, server_id = rows[0]
        return {'hostname': hostname, 'port': int(port),
                'server_id': int(server_id)}

    def rollback(self):
        for conn in self._conns():
            try:
                conn.rollback()
            except Exception:
                pass  # a dropped connection has rolled back on the server

    def close(self):
        for conn in self._conns():
            self._close(conn)

    def _conns(self):
        return [self.nova] if self.single else [self.nova, self.neutron]

    @staticmethod
    def _close(conn):
        try:
            conn.close()
        except Exception:
            pass

    def commit(self, which):
        conn = self.nova if which == 'nova' else self.neutron
        try:
            conn.commit()
        except Exception as exc:
            raise errors.DBError(url_mod.scrub(
                'commit on the %s database failed: %s' % (
                    which, base_errors.one_line(
                        exc, None, style=base_errors.NAMED)),
                self.secrets)) from None

    def ping(self, which):
        conn = self.nova if which == 'nova' else self.neutron
        try:
            conn.ping(reconnect=False)
        except Exception as exc:
            raise errors.DBError(url_mod.scrub(
                'the %s database connection was lost before commit: %s' % (
                    which, base_errors.one_line(
                        exc, None, style=base_errors.NAMED)),
                self.secrets)) from None


class MovePlan(object):
    """What a move changes: the rows, their values before and after."""

    def __init__(self, old_host, new_host):
        self.old_host = old_host
        self.new_host = new_host
        self.instances = []       # dicts uuid/before/after (+ vm_state ...)
        self.excluded = []        # dicts uuid/name: left alone (--exclude)
        self.bindings = []        # dicts port_id/device_id/before/after
        self.levels = []          # dicts port_id/level/before/after
        self.conflicts = []       # strings: why this move cannot happen
        self.statements = []      # Statement: the UPDATEs it would run
        self.target_node = None
        self.target_compute_id = None
        self.has_compute_id = False
        self.single_transaction = None

    def instance_uuids(self):
        return [i['uuid'] for i in self.instances]

    def excluded_uuids(self):
        return [i['uuid'] for i in self.excluded]

    def port_ids(self):
        return sorted({b['port_id'] for b in self.bindings})


def _check_hosts(old_host, new_host):
    for name, value in (('source host', old_host),
                        ('target host', new_host)):
        if not isinstance(value, str) or not value:
            raise errors.DBConfigError('%s is empty' % name)
        if len(value) > 255:
            raise errors.DBConfigError('%s is longer than 255 characters'
                                       % name)
    if old_host == new_host:
        raise errors.DBConfigError('source and target host are the same')


def _collect(sess, t, old_host, new_host, lock, exclude=()):
    """SELECT what the move touches (``FOR UPDATE`` when ``lock``).

    An instance whose uuid or display name is in ``exclude`` goes to
    ``plan.excluded``: no UPDATE names it, its ports are not read."""
    plan = MovePlan(old_host, new_host)
    plan.single_transaction = sess.single
    suffix = ' FOR UPDATE' if lock else ''
    nova_schema = sess.nova_url.database
    _, rows = sess.run(
        'nova',
        'SELECT COUNT(*) FROM information_schema.columns WHERE '
        'table_schema = %s AND table_name = %s AND column_name = %s',
        (nova_schema, 'instances', 'compute_id'), record=False)
    plan.has_compute_id = bool(rows and rows[0][0])
    cid = 'compute_id' if plan.has_compute_id else 'NULL'
    _, rows = sess.run(
        'nova',
        'SELECT uuid, host, node, %s, vm_state, power_state, display_name '
        'FROM %s WHERE host = %%s AND deleted = 0 ORDER BY uuid%s' % (
            cid, t.instances, suffix), (old_host,), record=False)
    _, nodes = sess.run(
        'nova',
        'SELECT id, hypervisor_hostname FROM %s WHERE host = %%s AND '
        'deleted = 0 ORDER BY id' % t.compute_nodes, (new_host,),
        record=False)
    if not nodes:
        plan.conflicts.append('target host %r has no compute node in this '
                              'cell database' % new_host)
    elif len(nodes) > 1:
        plan.conflicts.append('target host %r has %d compute nodes; a DB '
                              'move cannot choose one' % (new_host,
                                                          len(nodes)))
    else:
        plan.target_compute_id, plan.target_node = nodes[0][0], nodes[0][1]
    exclude = set(exclude or ())
    for uuid, host, node, compute_id, vm_state, power_state, name in rows:
        if uuid in exclude or name in exclude:
            plan.excluded.append({'uuid': uuid, 'name': name})
            continue
        plan.instances.append({
            'uuid': uuid, 'name': name, 'vm_state': vm_state,
            'power_state': power_state,
            'before': {'host': host, 'node': node,
                       'compute_id': compute_id},
            'after': {'host': new_host, 'node': plan.target_node,
                      'compute_id': (plan.target_compute_id
                                     if plan.has_compute_id else None)},
        })
    uuids = plan.instance_uuids()
    if uuids:
        _collect_ports(sess, t, plan, uuids, suffix)
    return plan


def _collect_ports(sess, t, plan, uuids, suffix):
    """The neutron side of ``_collect``: the moved servers' bindings and
    levels, and those that would collide on the new host."""
    old_host, new_host = plan.old_host, plan.new_host
    _, rows = sess.run(
        'neutron',
        'SELECT b.port_id, p.device_id FROM %s b JOIN %s p ON p.id = '
        'b.port_id WHERE b.host = %%s AND p.device_id IN (%s) '
        'ORDER BY b.port_id%s' % (t.bindings, t.ports, _in(uuids), suffix),
        [old_host] + uuids, record=False)
    for port_id, device_id in rows:
        plan.bindings.append({'port_id': port_id, 'device_id': device_id,
                              'before': old_host, 'after': new_host})
    ports = plan.port_ids()
    if not ports:
        return
    _, rows = sess.run(
        'neutron',
        'SELECT port_id, level FROM %s WHERE host = %%s AND port_id IN (%s) '
        'ORDER BY port_id, level%s' % (t.levels, _in(ports), suffix),
        [old_host] + ports, record=False)
    for port_id, level in rows:
        plan.levels.append({'port_id': port_id, 'level': level,
                            'before': old_host, 'after': new_host})
    # A binding of the same port for NEW (e.g. an inactive binding left by
    # a live migration) would collide with the moved one's primary key.
    _, rows = sess.run(
        'neutron',
        'SELECT port_id FROM %s WHERE host = %%s AND port_id IN (%s)%s' % (
            t.bindings, _in(ports), suffix), [new_host] + ports,
        record=False)
    for (port_id,) in rows:
        plan.conflicts.append('port %s already has a binding for %r'
                              % (port_id, new_host))
    _, rows = sess.run(
        'neutron',
        'SELECT port_id, level FROM %s WHERE host = %%s AND port_id IN (%s)'
        '%s' % (t.levels, _in(ports), suffix), [new_host] + ports,
        record=False)
    for port_id, level in rows:
        plan.conflicts.append('port %s already has binding level %s for %r'
                              % (port_id, level, new_host))


def _updates(t, plan):
    """The UPDATE statements of a move (parameterised)."""
    uuids = plan.instance_uuids()
    if not uuids:
        return []
    sets = 'host = %s, node = %s'
    params = [plan.new_host, plan.target_node]
    if plan.has_compute_id:
        sets += ', compute_id = %s'
        params.append(plan.target_compute_id)
    out = [Statement(
        'nova', 'UPDATE %s SET %s WHERE host = %%s AND deleted = 0 AND '
        'uuid IN (%s)' % (t.instances, sets, _in(uuids)),
        tuple(params + [plan.old_host] + uuids))]
    ports = plan.port_ids()
    if ports:
        out.append(Statement(
            'neutron', 'UPDATE %s SET host = %%s WHERE host = %%s AND '
            'port_id IN (%s)' % (t.bindings, _in(ports)),
            tuple([plan.new_host, plan.old_host] + ports)))
    level_ports = sorted({lv['port_id'] for lv in plan.levels})
    if level_ports:
        out.append(Statement(
            'neutron', 'UPDATE %s SET host = %%s WHERE host = %%s AND '
            'port_id IN (%s)' % (t.levels, _in(level_ports)),
            tuple([plan.new_host, plan.old_host] + level_ports)))
    return out


def _expected_rowcounts(plan):
    counts = [len(plan.instances)]
    if plan.bindings:
        counts.append(len(plan.bindings))
    if plan.levels:
        counts.append(len(plan.levels))
    return counts


def plan(nova_url, neutron_url, old_host, new_host, mode='auto',
         connector=None, exclude=()):
    """Dry run: read the rows a move would change; change nothing.
    ``exclude``: uuids and display names of instances to leave alone."""
    _check_hosts(old_host, new_host)
    sess = _Session(nova_url, neutron_url, mode, connector)
    try:
        sess.begin()
        t = _Tables(nova_url.database, neutron_url.database)
        result = _collect(sess, t, old_host, new_host, lock=False,
                          exclude=exclude)
        result.statements = _updates(t, result)
        return result
    finally:
        sess.rollback()
        sess.close()


def _journal_doc(plan, sess, state):
    return {
        'created_at': journal_mod.now(),
        'state': state,
        'old_host': plan.old_host,
        'new_host': plan.new_host,
        'single_transaction': sess.single,
        'nova': {'where': sess.nova_url.where(),
                 'server': sess.identity('nova'),
                 'schema': sess.nova_url.database,
                 'compute_id_column': plan.has_compute_id,
                 'instances': [{'uuid': i['uuid'], 'before': i['before'],
                                'after': i['after']}
                               for i in plan.instances]},
        'neutron': {'where': sess.neutron_url.where(),
                    'server': sess.identity('neutron'),
                    'schema': sess.neutron_url.database,
                    'bindings': [dict(b) for b in plan.bindings],
                    'levels': [dict(lv) for lv in plan.levels]},
    }


def execute(nova_url, neutron_url, old_host, new_host, journal_path,
            mode='auto', connector=None, before_commit=None,
            journal_extra=None, exclude=()):
    """Move the rows; return the :class:`MovePlan` that was applied.

    ``exclude``: uuids and display names of instances to leave alone.

    ``journal_extra`` (a dict) goes into the journal with the rows, written
    before anything changes (the placement allocations the caller moves
    after the commit).

    ``before_commit(session)`` is called after the UPDATEs and right before
    the commit (tests use it to drop a connection).  If anything fails
    before the commit nothing changes; the journal then says
    ``rolled-back``.  Raises :class:`errors.DBConflict` (nothing changed)
    when the rows are not movable, :class:`errors.DBError` on failures.
    """
    _check_hosts(old_host, new_host)
    sess = _Session(nova_url, neutron_url, mode, connector)
    t = _Tables(nova_url.database, neutron_url.database)
    doc = None
    committed = []
    try:
        sess.begin()
        result = _collect(sess, t, old_host, new_host, lock=True,
                          exclude=exclude)
        if result.conflicts:
            raise errors.DBConflict('; '.join(result.conflicts))
        result.statements = _updates(t, result)
        if not result.instances:
            sess.rollback()
            return result
        prepared = dict(journal_extra or {})
        prepared.update(_journal_doc(result, sess, 'prepared'))
        journal_mod.create(journal_path, prepared)
        doc = prepared  # from here on the journal is ours to update
        for stmt, expected in zip(result.statements,
                                  _expected_rowcounts(result)):
            count, _ = sess.run(stmt.db, stmt.sql, stmt.params)
            if count != expected:
                raise errors.DBConflict(
                    '%s changed %d rows, expected %d; rolled back' % (
                        stmt.sql.split(' SET ')[0], count, expected))
        if before_commit is not None:
            before_commit(sess)
        if sess.single:
            sess.commit('nova')
            committed.append('nova')
        else:
            sess.ping('neutron')
            sess.commit('nova')
            committed.append('nova')
            doc['state'] = 'nova-committed'
            journal_mod.write(journal_path, doc)
            try:
                sess.commit('neutron')
            except errors.DBError as exc:
                _compensate(nova_url, neutron_url, journal_path, doc,
                            connector, exc)
                raise  # not reached: _compensate raises
            committed.append('neutron')
        doc['state'] = 'committed'
        doc['committed_at'] = journal_mod.now()
        journal_mod.write(journal_path, doc)
        return result
    except BaseException:
        if not committed:
            sess.rollback()
            if doc is not None:
                doc['state'] = 'rolled-back'
                try:
                    journal_mod.write(journal_path, doc)
                except errors.DBError:
                    pass
        raise
    finally:
        sess.close()


def _compensate(nova_url, neutron_url, journal_path, doc, connector, cause):
    """Second commit failed: put the nova rows back from the journal."""
    try:
        _undo_part('nova', nova_url, doc, connector)
    except Exception as exc:
        doc['state'] = 'nova-committed'
        try:
            journal_mod.write(journal_path, doc)
        except errors.DBError:
            pass
        raise errors.CompensationFailed(url_mod.scrub(
            '%s; undoing the nova rows failed too (%s): run --undo %s' % (
                cause, exc, journal_path),
            nova_url.secrets() + neutron_url.secrets())) from None
    doc['state'] = 'compensated'
    journal_mod.write(journal_path, doc)
    raise errors.DBError('%s; the nova rows were put back from journal %s, '
                         'nothing changed' % (cause, journal_path))


# -- undo -------------------------------------------------------------------

class UndoResult(object):
    """Counts per kind (instances, bindings, levels); ``todo``: what is
    (or, in a dry run, would be) put back, as ``(kind, id, now, back)``."""

    def __init__(self):
        self.restored: collections.Counter[str] = collections.Counter()
        self.already: collections.Counter[str] = collections.Counter()
        self.gone: collections.Counter[str] = collections.Counter()
        self.todo: list[tuple[str, str, str, str]] = []


def _undo_instances(sess, t, doc, result, apply=True):
    """Put the instance rows back (``apply``) or only read what would
    be (no lock, no write)."""
    rows = doc['nova']['instances']
    if not rows:
        return
    has_cid = doc['nova'].get('compute_id_column', False)
    cid = 'compute_id' if has_cid else 'NULL'
    uuids = [r['uuid'] for r in rows]
    _, current = sess.run(
        'nova', 'SELECT uuid, host, node, %s FROM %s WHERE uuid IN (%s)%s'
        % (cid, t.instances, _in(uuids), _lock(apply)), uuids)
    now = {u: {'host': h, 'node': n, 'compute_id': c}
           for u, h, n, c in current}
    todo = []
    conflicts = []
    for r in rows:
        cur = now.get(r['uuid'])
        if cur is None:
            result.gone['instances'] += 1
        elif cur == r['after']:
            todo.append(r)
        elif cur == r['before']:
            result.already['instances'] += 1
        else:
            conflicts.append('instance %s is now on %r, not %r' % (
                r['uuid'], cur['host'], r['after']['host']))
    if conflicts:
        raise errors.DBConflict('; '.join(conflicts))
    for r in todo:
        b, a = r['before'], r['after']
        result.todo.append(('instances', r['uuid'], a['host'], b['host']))
        if not apply:
            result.restored['instances'] += 1
            continue
        sets = 'host = %s, node = %s'
        params = [b['host'], b['node']]
        if has_cid:
            sets += ', compute_id = %s'
            params.append(b['compute_id'])
        count, _ = sess.run(
            'nova', 'UPDATE %s SET %s WHERE uuid = %%s AND host = %%s' % (
                t.instances, sets), params + [r['uuid'], a['host']])
        if count != 1:
            raise errors.DBConflict('instance %s changed during undo'
                                    % r['uuid'])
        result.restored['instances'] += 1


def _lock(apply):
    return ' FOR UPDATE' if apply else ''


def _undo_rows(sess, t, doc, result, kind, apply=True):
    """Put the neutron rows of ``kind`` back (``apply``) or only read
    what would be (no lock, no write)."""
    rows = doc['neutron'][kind]
    if not rows:
        return
    table = t.bindings if kind == 'bindings' else t.levels
    ports = sorted({r['port_id'] for r in rows})
    if kind == 'bindings':
        _, current = sess.run(
            'neutron', 'SELECT port_id, host, NULL FROM %s WHERE port_id IN '
            '(%s)%s' % (table, _in(ports), _lock(apply)), ports)
    else:
        _, current = sess.run(
            'neutron', 'SELECT port_id, host, level FROM %s WHERE port_id IN '
            '(%s)%s' % (table, _in(ports), _lock(apply)), ports)
    have = {(p, h, lv) for p, h, lv in current}
    present = {p for p, _, _ in current}
    todo = []
    conflicts = []
    for r in rows:
        lv = r.get('level')
        at_after = (r['port_id'], r['after'], lv) in have
        at_before = (r['port_id'], r['before'], lv) in have
        if at_after and not at_before:
            todo.append(r)
        elif at_before and not at_after:
            result.already[kind] += 1
        elif not at_after and not at_before:
            if r['port_id'] in present:
                conflicts.append('port %s is now bound elsewhere' %
                                 r['port_id'])
            else:
                result.gone[kind] += 1
        else:
            conflicts.append('port %s has %s for both %r and %r' % (
                r['port_id'], kind, r['before'], r['after']))
    if conflicts:
        raise errors.DBConflict('; '.join(conflicts))
    for r in todo:
        result.todo.append((kind, r['port_id'], r['after'], r['before']))
        if not apply:
            result.restored[kind] += 1
            continue
        if kind == 'bindings':
            count, _ = sess.run(
                'neutron', 'UPDATE %s SET host = %%s WHERE port_id = %%s AND '
                'host = %%s' % table, (r['before'], r['port_id'], r['after']))
        else:
            count, _ = sess.run(
                'neutron', 'UPDATE %s SET host = %%s WHERE port_id = %%s AND '
                'host = %%s AND level = %%s' % table,
                (r['before'], r['port_id'], r['after'], r['level']))
        if count != 1:
            raise errors.DBConflict('port %s changed during undo'
                                    % r['port_id'])
        result.restored[kind] += 1


def _undo_part(part, url, doc, connector, result=None):
    """Undo one schema's rows in its own transaction (compensation)."""
    result = result or UndoResult()
    sess = _Session(url, url, 'single', connector)
    t = _Tables(doc['nova']['schema'], doc['neutron']['schema'])
    try:
        sess.begin()
        if part == 'nova':
            _undo_instances(sess, t, doc, result)
        else:
            _undo_rows(sess, t, doc, result, 'bindings')
            _undo_rows(sess, t, doc, result, 'levels')
        sess.commit('nova')
        return result
    except BaseException:
        sess.rollback()
        raise
    finally:
        sess.close()


def _check_journal_targets(doc, nova_url, neutron_url):
    for part, url in (('nova', nova_url), ('neutron', neutron_url)):
        if doc[part]['schema'] != url.database:
            raise errors.DBConfigError(
                'the journal is for %s database %r but the %s URL names %r'
                % (part, doc[part]['schema'], part, url.database))


def _check_journal_servers(doc, sess):
    """The servers the undo talks to must be the ones the move changed:
    same host name, port and server id as recorded (a journal without them
    must name the same host:port/database)."""
    for part, url in (('nova', sess.nova_url), ('neutron', sess.neutron_url)):
        recorded = doc[part].get('server')
        if recorded is None:
            if doc[part].get('where') != url.where():
                raise errors.DBConflict(
                    'the journal is for the %s database at %s but the %s '
                    'URL names %s; nothing changed' % (
                        part, doc[part].get('where'), part, url.where()))
            continue
        found = sess.identity(part)
        if found != recorded:
            raise errors.DBConflict(
                'the %s database server answering at %s is %s:%s (server id '
                '%s), not %s:%s (server id %s) that the move changed; '
                'nothing changed' % (
                    part, url.where(), found['hostname'], found['port'],
                    found['server_id'], recorded['hostname'],
                    recorded['port'], recorded['server_id']))


def undo(journal_path, nova_url, neutron_url, mode='auto', connector=None,
         before_commit=None, dry_run=False):
    """Put back the previous values recorded in a journal.

    Rows still holding what the move wrote are restored; rows already back
    are left; rows changed since by someone else make the whole undo refuse
    (:class:`errors.DBConflict`, nothing changed).  Safe to run again.

    ``dry_run``: the same checks and counts (``result.todo`` lists each row
    that would go back), read without locks, nothing written: no UPDATE, no
    commit, the journal as it was.
    """
    doc = journal_mod.read(journal_path)
    _check_journal_targets(doc, nova_url, neutron_url)
    if doc['state'] == 'undone':
        raise errors.DBConflict('journal %s was already undone' %
                                journal_path)
    result = UndoResult()
    sess = _Session(nova_url, neutron_url, mode, connector)
    t = _Tables(nova_url.database, neutron_url.database)
    committed = []
    try:
        _check_journal_servers(doc, sess)
        sess.begin()
        _undo_instances(sess, t, doc, result, apply=not dry_run)
        _undo_rows(sess, t, doc, result, 'bindings', apply=not dry_run)
        _undo_rows(sess, t, doc, result, 'levels', apply=not dry_run)
        if dry_run:
            return result  # the finally rolls back and closes
        if before_commit is not None:
            before_commit(sess)
        if sess.single:
            sess.commit('nova')
        else:
            sess.ping('neutron')
            sess.commit('nova')
            committed.append('nova')
            sess.commit('neutron')  # on failure: run --undo again
        committed.append('all')
    except BaseException:
        if not committed:
            sess.rollback()
        raise
    finally:
        if dry_run:
            sess.rollback()
        sess.close()
    doc['state'] = 'undone'
    doc['undone_at'] = journal_mod.now()
    journal_mod.write(journal_path, doc)
    return result
