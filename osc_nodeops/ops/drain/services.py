"""The drain's nova-compute service steps: find it, disable it (S1) with
the operator's reason, enable it (S6); and the lease an earlier version
kept in a disabled reason (the host lease itself is ``ops/lease.py``)."""

from osc_nodeops import errors
from osc_nodeops import timeutil
from osc_nodeops.ops import lease
from osc_nodeops.ops.cloud import nova

COMPUTE_BINARY = nova.COMPUTE_BINARY


def compute_service(compute, host):
    """The nova-compute service of ``host``; ``errors.NotFound`` if none."""
    return nova.find_compute_service(compute, host, errors.NotFound)


operator_name = lease.operator_name


def default_reason(conn=None, now=None):
    user = operator_name(conn)
    now = now or timeutil.utcnow()
    return 'maintenance: drained by %s at %s (osc-nodeops)' % (
        user, timeutil.api_time(now))


def disable_service(ctx, service, reason=None, default=None):
    """S1.  Returns a note for the operator.  ``service``: read after the
    lease was taken (never a record from before it)."""
    if service.status == 'disabled':
        if reason:
            set_disabled(ctx, service, reason)
            return 'was already disabled; reason set to %r' % reason
        return 'was already disabled (reason kept: %r)' % (
            service.disabled_reason,)
    set_disabled(ctx, service, reason or default)
    return 'disabled (reason: %r)' % (reason or default,)


def set_disabled(ctx, service, reason):
    """Disable the service with ``reason`` (also when it is disabled
    already: openstacksdk sends only the fields that changed on the object
    it is given, and nova refuses a reason without a status, so it is given
    the ID, a fresh object, from 2.53 on)."""
    target = service.id if isinstance(service.id, str) else service
    ctx.api(ctx.compute.disable_service, target, host=service.host,
            binary=service.binary, disabled_reason=reason)


def find_service_quietly(ctx, host):
    try:
        return nova.find_compute_service(ctx.compute, host)
    except LookupError:
        return None


def enable_service(ctx, service):
    """S6."""
    if service.status == 'enabled':
        return 'was already enabled'
    # The SDK updates ``service`` in place from the response (reason None):
    # read the old reason first.
    reason = service.disabled_reason
    ctx.api(ctx.compute.enable_service, service, host=service.host,
            binary=service.binary)
    return 'enabled (was disabled: %r)' % (reason,)


# -------------------------------------------------------------- lease
#
# The host lease lives in ``ops/lease.py`` (one run at a time per host).
# What follows reads an earlier version's lease in a disabled reason; kept
# for ``ops/maintain.py`` until it holds a ``lease.Lease``.

REASON_MAX = lease.REASON_MAX
lease_owner = lease.owner_name
parse_lease = lease.parse_legacy
without_lease = lease.without_legacy
with_lease = lease.with_legacy


def check_lease(service, me, break_lease=False, events=None):
    """Refuse when an earlier version's lease in ``service``'s reason is
    another live run's (``lease.judge``); returns a note when taken over.
    """
    held = lease.legacy_holder(service)
    if held is not None and held.owner == me:
        return None
    return lease.judge(service.host, held, break_lease)
