"""The owner's maintenance policy, and the ladder a dry run shows."""

from osc_nodeops import timeutil
from osc_nodeops.ops.drain import actions
from osc_nodeops.ops.drain import preflight

# A server's owner may say what maintenance it accepts: server metadata
# ``nodeops:maintenance=VALUE`` or a server tag ``nodeops:maintenance=VALUE``.
# Tenant-writable, so untrusted: exactly one of POLICY_VALUES, else ignored
# (with a warning in the row).  Honoured only within the operator's options:
# ``cold`` allows the cold fallback for that server, ``stop`` makes it
# stop-cold-start (downtime the owner accepts), ``skip`` takes effect only
# with --honour-skip (a tenant cannot block maintenance), ``live`` is the
# default and changes nothing.

POLICY_KEY = 'nodeops:maintenance'
POLICY_VALUES = ('live', 'cold', 'stop', 'skip')


def _shown(value):
    """Tenant text fit for a row: at most 40 characters, escaped."""
    text = str(value)
    return repr(text[:40] + ('...' if len(text) > 40 else ''))


def owner_policy(server):
    """``(value, warning)``: the owner's policy (None when there is none
    or it is not valid; then ``warning`` says why)."""
    found = []
    md = getattr(server, 'metadata', None) or {}
    if POLICY_KEY in md:
        found.append(md[POLICY_KEY])
    for tag in getattr(server, 'tags', None) or ():
        if isinstance(tag, str) and tag.startswith(POLICY_KEY + '='):
            found.append(tag[len(POLICY_KEY) + 1:])
    if not found:
        return None, ''
    bad = [v for v in found if v not in POLICY_VALUES]
    if bad:
        return None, ('owner policy %s=%s ignored: not one of %s' % (
            POLICY_KEY, _shown(bad[0]), ', '.join(POLICY_VALUES)))
    if len(set(found)) > 1:
        return None, ('owner policy ignored: its tag and metadata disagree '
                      '(%s)' % ', '.join(sorted(set(found))))
    return found[0], ''


def apply_policy(ctx, item, opts):
    """The owner's policy onto a planned item, within the operator's
    options (see above); the operator's ``--fallback cold`` applies to
    every live move."""
    value, warning = owner_policy(item.server)
    item.policy = value
    if warning:
        item.policy_note = warning
        ctx.emit('warning', warning, item)
    if item.action is None or item.adopt:
        return
    live = item.action.name == 'live' and item.status_before == 'ACTIVE'
    if value == 'skip':
        if opts.honour_skip:
            item.action = None
            item.reason = ('owner asked to skip (%s=skip); honoured '
                           '(--honour-skip)' % POLICY_KEY)
            return
        item.policy_note = ('owner asked to skip (%s=skip); moved anyway: '
                            'the operator did not give --honour-skip' %
                            POLICY_KEY)
    elif value == 'stop' and live and not (
            ctx.target_host and not ctx.features.cold_migrate_host):
        item.action = actions.action_for('stop-cold',
                                         record_origin_host=item.source)
        item.policy_note = ('owner policy stop: shut down, cold-migrate, '
                            'start again')
    elif value == 'cold' and live:
        item.data['cold_ok'] = 'owner policy %s=cold' % POLICY_KEY
        item.policy_note = 'owner policy cold: a cold fallback is allowed'
    elif value in ('cold', 'stop'):
        item.policy_note = 'owner policy %s: nothing to change for a %s ' \
            'server' % (value, item.status_before)
    if getattr(opts, 'fallback', None) == 'cold' and live and \
            item.action.name == 'live':
        item.data['cold_ok'] = '--fallback cold'


def plan_ladder(item, opts, ladder):
    """What the drain will do with a move that does not finish, as the
    dry run shows it (``item.ladder``)."""
    if item.action is None:
        item.ladder = []
        return
    name = item.action.name
    if name == 'stop-cold':
        item.ladder = ['stop', 'cold-migrate', 'confirm', 'start']
        return
    if name == 'cold':
        item.ladder = ['cold-migrate', 'confirm']
        return
    steps = [name]
    if name in ('live', 'live-suspended'):
        step = opts.step_timeout if opts.step_timeout else max(
            60.0, opts.timeout / 2)
        item.timeout, basis = per_gib_timeout(item.server, opts)
        first = '%ss%s' % (timeutil.seconds_text(
            item.timeout or opts.timeout), ' (%s)' % basis if basis else '')
        for n, mode in enumerate(ladder):
            steps.append('%s after %s' % (mode, first) if n == 0
                         else '%s after %ss more' % (
                             mode, timeutil.seconds_text(step)))
        if ladder[-1] != 'leave':
            steps.append('left running after %ss more'
                         % timeutil.seconds_text(step))
    if opts.retries:
        steps.append('retry %d time(s)%s' % (
            opts.retries, ' on another host' if name != 'live-suspended'
            and not opts.target_host else ''))
    if item.data.get('cold_ok'):
        steps.append('cold fallback (%s), ACTIVE again' %
                     item.data['cold_ok'])
    item.ladder = steps


def per_gib_timeout(server, opts):
    """``--timeout-per-gib``: how long a live migration of ``server`` may
    run, as nova's ``live_migration_completion_timeout`` counts it: that
    many seconds per GiB of its memory, and of its local disks unless they
    stay (``--block-migration no``, a volume-backed root), never less than
    ``--timeout``.  Returns ``(seconds or None, what it was counted
    from)``; ``(None, why)`` without the flavor's sizes (compute API
    before 2.47), ``(None, '')`` without the option."""
    per = getattr(opts, 'timeout_per_gib', None)
    if not per:
        return None, ''
    flavor = preflight.flavor_of(server)
    if flavor.get('ram') is None:
        return None, ('--timeout-per-gib: no flavor sizes in the listing '
                      '(compute API 2.47)')
    gib = float(flavor['ram']) / 1024
    if opts.block_migration != 'no':
        gib += float(flavor.get('ephemeral') or 0)
        if not preflight.volume_backed(server):
            gib += float(flavor.get('disk') or 0)
    seconds = max(opts.timeout, per * gib)
    return seconds, '%s GiB x %ss' % (timeutil.seconds_text(gib),
                                      timeutil.seconds_text(per))
