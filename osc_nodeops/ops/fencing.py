"""``recover-all --dead``: evacuate only a fenced host, and keep it out of
the scheduler afterwards.

A nova-compute reported down is not a host powered off: a crashed
nova-compute or a management-network partition leaves the guests running,
and evacuating them starts a second copy on the same shared disks and
volumes (split brain, corrupted data).  So a dead-host recovery (evacuate
or ``--via-db``) needs evidence that the host is fenced, one of:

* its nova-compute service was forced down by someone else before the run
  (an external fencer: Masakari's host monitor with Pacemaker/STONITH, an
  operator's runbook that fences first, or an earlier run that had the
  evidence);
* ``--confirm-fenced HOST``: the operator says the host is powered off,
  naming it again;
* ``--fence-check CMD``: a command (IPMI/Redfish power status) that exits 0
  when the host is powered off (``privileged/fence_check.py`` runs it).

When ``--fence-check`` is given it must pass, whatever else is there.

Before the first evacuation the dead host's nova-compute is disabled with a
reason naming the evacuation (as Masakari does), so that when the host
boots nothing is scheduled there before someone has looked at it; a host
someone else disabled keeps their reason.  The row says how to bring it
back.
"""

import dataclasses

from osc_nodeops import errors
from osc_nodeops import timeutil
from osc_nodeops.ops import engine
from osc_nodeops.ops.cloud import calls
from osc_nodeops.ops.cloud import nova
from osc_nodeops.privileged import fence_check

FENCE_TIMEOUT = 60.0  # seconds, --fence-timeout's default
DISABLE_METHOD = 'disable-host'


def validate(opts, host):
    """Usage errors of the fencing options (before any cloud call)."""
    usage = errors.UsageError
    if not opts.dead and (opts.fence_check is not None):
        raise usage('--fence-check belongs to --dead')
    if opts.confirm_fenced and host and opts.confirm_fenced != host:
        raise usage('--confirm-fenced names %r, not the host being '
                    'recovered (%r): nothing was changed' % (
                        opts.confirm_fenced, host))
    if opts.force_down and not (opts.confirm_fenced or opts.fence_check):
        raise usage('--force-down needs fencing evidence: --confirm-fenced '
                    '%s (the host is powered off) or --fence-check CMD' % (
                        host or 'HOST'))
    if opts.fence_check is not None:
        try:
            fence_check.argv(opts.fence_check, host or 'HOST')
        except fence_check.FenceCheckError as exc:
            raise usage(str(exc))
    if not opts.fence_timeout > 0:
        raise usage('--fence-timeout must be positive')


def _run_check(opts, host):
    """'--fence-check exited 0 ...' or ``Refused``."""
    try:
        status = fence_check.run(opts.fence_check, host, opts.fence_timeout)
    except fence_check.FenceCheckError as exc:
        raise errors.Refused('%s; nothing was changed' % exc)
    if status is None:
        raise errors.Refused(
            '--fence-check for %s did not answer within %g s: no fencing '
            'evidence; nothing was changed' % (host, opts.fence_timeout))
    if status != 0:
        raise errors.Refused(
            '--fence-check for %s exited %d: the host is not known to be '
            'powered off; nothing was changed' % (host, status))
    return '--fence-check exited 0 (powered off)'


def evidence(service, host, opts):
    """Why ``host`` counts as fenced (a phrase), or ``errors.Refused``.

    ``service`` is its nova-compute as read before anything was changed.
    """
    found = []
    if opts.fence_check is not None:
        found.append(_run_check(opts, host))
    if opts.confirm_fenced == host:
        found.append('confirmed by the operator (--confirm-fenced %s)' % host)
    if service.is_forced_down:
        found.append('nova-compute forced down by someone else (an '
                     'external fencer, or an earlier run with evidence)')
    if found:
        return 'fenced: ' + '; '.join(found)
    raise errors.Refused(
        'nova-compute on %s is %s, but there is no fencing evidence (a '
        'crashed nova-compute or a partitioned network leaves its servers '
        'running: evacuating them runs each disk twice). Power the host '
        'off, then pass --confirm-fenced %s or --fence-check CMD; nothing '
        'was changed' % (host, service.state or 'down', host))


@dataclasses.dataclass
class Fenced(object):
    """Why the dead host counts as fenced, and whether this run forces its
    nova-compute down (then the way back includes ``--up``)."""

    note: str
    forced_by_us: bool = False


class HostItem(engine.PlanItem):
    """The row of the dead host itself: disabled, or why not."""

    method_name = DISABLE_METHOD

    def __init__(self, host, status_before):
        super().__init__(None, source=host)
        self.host = host
        self.status_before = status_before

    @property
    def id(self):
        return self.host

    @property
    def method(self):
        return self.method_name

    @property
    def ok(self):
        return self.result in (engine.PLANNED, engine.SKIPPED, 'disabled')


def reason(evidence_note, now=None):
    """The disabled reason: the evacuation, when, and what to do."""
    return ('osc-nodeops recover-all --dead at %s: host dead (%s), its '
            'servers evacuated; check it before enabling it' % (
                timeutil.api_time(now or timeutil.utcnow()),
                evidence_note.split(' (')[0]))[:255]


def way_back(host, enable=True, forced_by_us=False):
    """The commands that bring the host back once it is repaired."""
    steps = []
    if enable:
        steps.append('openstack compute service set --enable %s '
                     'nova-compute' % host)
    if forced_by_us:
        steps.append('openstack compute service set --up %s nova-compute '
                     '(this run forced it down)' % host)
    return 'once the host is repaired and checked: ' + '; '.join(steps)


def disable_dead_host(ctx, host, fenced, dry_run):
    """Disable the dead host's nova-compute (read again first: a host
    someone disabled meanwhile keeps their reason); its :class:`HostItem`.
    """
    compute = ctx.compute
    service = calls.call_with_retry(
        lambda: nova.find_compute_service(compute, host, errors.NotFound))
    item = HostItem(host, service.status)
    forced_by_us = fenced.forced_by_us
    text = reason(fenced.note)
    if service.status == 'disabled':
        item.result = engine.SKIPPED
        item.message = ('already disabled by someone else (reason %r): left '
                        'as it is' % (service.disabled_reason,))
        if forced_by_us:
            item.message += '; ' + way_back(host, False, True)
    elif dry_run:
        item.result = engine.PLANNED
        item.message = 'would disable nova-compute on %s (reason: %r)' % (
            host, text)
    else:
        ctx.api(compute.disable_service, service, host=host,
                binary=nova.COMPUTE_BINARY, disabled_reason=text)
        item.result = 'disabled'
        item.message = 'nova-compute on %s disabled (reason: %r); %s' % (
            host, text, way_back(host, True, forced_by_us))
    ctx.emit('host', item.message)
    return item
