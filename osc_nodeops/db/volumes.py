"""Instance/volume pairs of a host straight from the databases (S17).

The guide joins ``nova.instances`` with ``cinder.volumes``; today cinder
keeps attachments in ``volume_attachment`` (one row per attachment, with
the device in ``mountpoint``), so the join goes instances ->
volume_attachment -> volumes, skipping soft-deleted rows on every side.
When both schemas are on one server (as one account) it is one query;
otherwise the nova side is read first and the cinder side is asked for
those instance UUIDs.  Read-only: every transaction is rolled back.
"""

import collections

from osc_nodeops import errors as base_errors
from osc_nodeops.db import errors
from osc_nodeops.db import url as url_mod

Pair = collections.namedtuple(
    'Pair', 'server_id server_name volume_id device status attach_status '
            'volume_name attached_host')


def _query(conn, sql, params, secrets, which):
    try:
        with conn.cursor() as cur:
            cur.execute(sql, tuple(params))
            return cur.fetchall()
    except Exception as exc:
        raise errors.DBError(url_mod.scrub(
            '%s database: %s' % (which, base_errors.one_line(
                exc, None, style=base_errors.NAMED)),
            secrets)) from None


def _close(conn):
    try:
        conn.rollback()
    except Exception:
        pass
    try:
        conn.close()
    except Exception:
        pass


def list_pairs(nova_url, cinder_url, host, connector=None):
    """Return the :class:`Pair` list of ``host`` (instances not deleted)."""
    if not host:
        raise errors.DBConfigError('host is empty')
    connector = connector or (lambda u: u.connect())
    secrets = tuple(nova_url.secrets()) + tuple(cinder_url.secrets())
    n = url_mod.quote_schema(nova_url.database)
    c = url_mod.quote_schema(cinder_url.database)
    if nova_url.same_server(cinder_url):
        conn = connector(nova_url)
        try:
            rows = _query(
                conn,
                'SELECT i.uuid, i.display_name, a.volume_id, a.mountpoint, '
                'v.status, a.attach_status, v.display_name, a.attached_host '
                'FROM %s.`instances` i '
                'JOIN %s.`volume_attachment` a ON a.instance_uuid = i.uuid '
                'AND a.deleted = 0 '
                'JOIN %s.`volumes` v ON v.id = a.volume_id AND v.deleted = 0 '
                'WHERE i.host = %%s AND i.deleted = 0 '
                'ORDER BY i.uuid, a.mountpoint' % (n, c, c),
                (host,), secrets, 'nova/cinder')
        finally:
            _close(conn)
        return [Pair(*r) for r in rows]
    conn = connector(nova_url)
    try:
        instances = _query(
            conn, 'SELECT uuid, display_name FROM %s.`instances` WHERE '
            'host = %%s AND deleted = 0 ORDER BY uuid' % n, (host,), secrets,
            'nova')
    finally:
        _close(conn)
    if not instances:
        return []
    names = dict(instances)
    uuids = sorted(names)
    conn = connector(cinder_url)
    try:
        rows = _query(
            conn,
            'SELECT a.instance_uuid, a.volume_id, a.mountpoint, v.status, '
            'a.attach_status, v.display_name, a.attached_host '
            'FROM %s.`volume_attachment` a JOIN %s.`volumes` v ON '
            'v.id = a.volume_id AND v.deleted = 0 '
            'WHERE a.deleted = 0 AND a.instance_uuid IN (%s) '
            'ORDER BY a.instance_uuid, a.mountpoint' % (
                c, c, ', '.join(['%s'] * len(uuids))),
            uuids, secrets, 'cinder')
    finally:
        _close(conn)
    return [Pair(r[0], names.get(r[0]), *r[1:]) for r in rows]
