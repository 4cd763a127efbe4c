"""``compute node maintain --dry-run``: a host's row, from its drain's
dry-run plan (``drain.drain_hosts`` with ``dry_run``) and the request's
steps.  Nothing here calls the cloud."""

from osc_nodeops import timeutil
from osc_nodeops.privileged import operator_step


def host_plan(req, result, plan):
    """A host's row in a dry run: what its drain would do, then each
    step as it would run.  False when the run would refuse the host's
    wave (a server would stay without --allow-skipped, or would not fit
    without --allow-partial)."""
    items = plan.items if plan is not None else []
    moves = [i for i in items if i.action is not None]
    stay = [i for i in items if i.action is None]
    misfits = [i for i in moves if i.fits is False]
    methods: dict = {}
    for i in moves:
        methods[i.method] = methods.get(i.method, 0) + 1
    drained = 'would move %d%s' % (len(moves), ' (%s)' % ', '.join(
        '%d %s' % (n, m) for m, n in sorted(methods.items()))
        if methods else '')
    opts = req.drain_options
    notes = []
    if stay:
        notes.append('%d would stay (%s: %s)' % (
            len(stay), stay[0].label, stay[0].reason))
    if misfits:
        notes.append('%d do not fit the rest of the cloud (%s)' % (
            len(misfits), misfits[0].label))
    blocked = [why for why, bad, allowed in (
        ('--allow-skipped', stay, opts.allow_skipped),
        ('--allow-partial', misfits, opts.allow_partial)) if bad and not
        allowed]
    if blocked:
        notes.append('the wave would be refused, nothing changed (%s '
                     'goes on)' % ' and '.join(blocked))
    result.steps['drain'] = drained
    if req.exec_cmd:
        result.steps['exec'] = operator_step.command_line(req.exec_cmd,
                                                          result.host)
    result.steps['wait'] = 'nova-compute up (%ss at most)' % (
        timeutil.seconds_text(req.up_timeout))
    if req.check_cmd:
        result.steps['check'] = operator_step.command_line(req.check_cmd,
                                                           result.host)
    result.steps['undrain'] = ('enable, move back' if req.migrate_back
                               else 'enable')
    result.result = 'would-refuse' if blocked else 'planned'
    result.message = '; '.join([drained] + notes)
    return not blocked
