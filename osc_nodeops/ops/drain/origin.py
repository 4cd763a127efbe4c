"""Where a drained server came from, recorded on the server.

``nodeops:drain`` (the marker: intent before the move, the migration after
it) and ``nodeops:origin`` (the host, after the verified move); see the
package docstring.  Undrain trusts an origin only when the admin-only
migration record agrees (``trusted_origin``).
"""

from osc_nodeops import timeutil
from osc_nodeops.ops.cloud import nova

ORIGIN_KEY = 'nodeops:origin'
MARKER_KEY = 'nodeops:drain'


def marker_value(method, now=None, source=None, migration=None):
    now = now or timeutil.utcnow()
    value = 'method=%s at=%s' % (method, timeutil.api_time(now))
    if source:
        value += ' from=%s' % source
    if migration is not None:
        value += ' migration=%s' % migration
    return value


def parse_marker(value):
    out = {}
    for part in (value or '').split():
        k, _, v = part.partition('=')
        out[k] = v
    return out


def drained_from(server, host):
    """True if our drain of ``host`` marked this server (a move under way
    or done)."""
    md = getattr(server, 'metadata', None) or {}
    if MARKER_KEY not in md:
        return False
    source = parse_marker(md[MARKER_KEY]).get('from')
    return source == host if source else md.get(ORIGIN_KEY) == host


def migration_ref(m):
    """How the marker names a migration: its UUID (2.59+), else its ID."""
    return str(getattr(m, 'uuid', None) or m.id)


def mark_intent(ctx, item, host, method):
    """Before the move: the intent (for a rerun to pick it up), not yet an
    origin (issue 15 item 2: only moves that happened get one)."""
    ctx.api(ctx.compute.set_server_metadata, item.id,
            **{MARKER_KEY: marker_value(method, source=host)})


def record_origin(ctx, item, host, method):
    """After a verified move: the origin, and the migration that moved it
    (undrain trusts the origin only when that admin-only record agrees)."""
    m = item.last_migration
    ctx.api(ctx.compute.set_server_metadata, item.id, **{
        ORIGIN_KEY: host, MARKER_KEY: marker_value(
            method, source=host,
            migration=migration_ref(m) if m is not None else None)})


def clear_origin(ctx, item):
    ctx.api(ctx.compute.delete_server_metadata, item.id,
            [ORIGIN_KEY, MARKER_KEY])


def clear_intent(ctx, item):
    ctx.api(ctx.compute.delete_server_metadata, item.id, [MARKER_KEY])


def trusted_origin(server, host, snap):
    """``(True, migration)`` when an admin-only migration record confirms
    that our drain moved ``server`` away from ``host``; else ``(False,
    why)``.

    ``nodeops:origin`` is server metadata, which the server's project can
    write: it is only a hint.  The marker names the migration of our drain
    (its UUID); that record (from the migrations touching ``host``, which
    only an admin can list) must be of this server, from ``host``, finished,
    to the host the server is on now, and the server's newest move touching
    ``host``.
    """
    md = getattr(server, 'metadata', None) or {}
    marker = parse_marker(md.get(MARKER_KEY))
    ref = marker.get('migration')
    if md.get(ORIGIN_KEY) != host:
        return False, 'origin record names %s' % md.get(ORIGIN_KEY)
    if not ref:
        return False, 'origin record names no migration of a drain'
    records = snap.migrations(server.id)
    found = [m for m in records if migration_ref(m) == ref
             or str(m.id) == ref]
    if not found:
        return False, ('no migration %s of this server from %s' % (ref,
                                                                    host))
    m = found[-1]
    if (m.source_compute != host or m.status not in nova.MIGRATION_DONE
            or m.migration_type not in (None, 'live-migration',
                                        'migration')):
        return False, 'migration %s is not a finished move from %s' % (
            ref, host)
    if records[-1] is not m:
        return False, 'moved again after migration %s' % ref
    if m.dest_compute != server.compute_host:
        return False, 'migration %s went to %s; the server is on %s' % (
            ref, m.dest_compute, server.compute_host)
    return True, m
