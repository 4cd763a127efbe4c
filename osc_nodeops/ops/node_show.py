"""S8 through the API: how a compute host looks to nova.

``gather(compute, host)`` returns an ordered dict of plain values (str, int,
bool, dict, list) so that ``ShowNode`` can print it with any cliff formatter
and other sources (e.g. a ``--local`` look at the node itself) can add keys.
Four list calls: services, hypervisors, servers on the host (listed, with
their counts), migrations touching the host; and one GET of the leases
aggregate (``ops/lease.py``): who holds the host, until when.
"""

import collections
import dataclasses

from osc_nodeops import errors
from osc_nodeops import timeutil
from osc_nodeops.ops import drain
from osc_nodeops.ops import lease
from osc_nodeops.ops import local_service
from osc_nodeops.ops.cloud import calls
from osc_nodeops.ops.cloud import nova


@dataclasses.dataclass
class Request(object):
    host: str
    local: bool = False
    compute_log: str = '/var/log/nova/nova-compute.log'
    audit: bool = False
    require_up: bool = False


#: ``--require-up``: the newest heartbeat may be this old (nova's default
#: ``service_down_time``; nova says ``down`` after its own setting).
FRESH_HEARTBEAT = 60


def check_failure(info):
    """``--require-up``: why ``info`` (``show``'s fields) is not a healthy
    nova-compute, one line, or None when it is: the service up, not
    forced down, a heartbeat at most ``FRESH_HEARTBEAT`` seconds old and,
    when the node itself was looked at (``--local``), the process running
    and connected to AMQP since it started."""
    host, age = info['Host'], info['Heartbeat Age Seconds']
    if info['Forced Down']:
        return 'nova-compute on %s is forced down' % host
    if info['State'] != 'up':
        return 'nova-compute on %s is %s (last heartbeat %s)' % (
            host, info['State'], info['Last Heartbeat'] or 'never')
    if age is None:
        return 'nova-compute on %s has no heartbeat' % host
    if age > FRESH_HEARTBEAT:
        return ('nova-compute on %s: last heartbeat %d s ago (more than %d)'
                % (host, age, FRESH_HEARTBEAT))
    if info.get('Local OK') is False:
        return ('nova-compute on %s: %s; %s' % (
            host, info.get('Local Process'), info.get('Local AMQP')))
    return None


def _hypervisor_for(compute, host):
    hypervisors = calls.call_with_retry(
        lambda: list(compute.hypervisors(details=True)))
    for hv in hypervisors:
        svc = hv.service_details or {}
        if svc.get('host') == host:
            return hv
    for hv in hypervisors:
        if hv.name == host or (hv.name or '').split('.')[0] == host:
            return hv
    return None


def _migration_line(m):
    return '%s %s %s %s->%s %s' % (
        m.id, m.server_id, m.migration_type or 'migration',
        m.source_compute, m.dest_compute, m.status)


def gather(compute, host, now=None):
    """Everything the API says about ``host`` (``errors.NotFound`` if it
    has no nova-compute)."""
    now = now or timeutil.utcnow()
    svc = drain.compute_service(compute, host)
    info = collections.OrderedDict()
    info['Host'] = host
    # Status / State as in ``openstack compute service list``
    info['Status'] = svc.status
    info['State'] = svc.state
    info['Disabled Reason'] = svc.disabled_reason
    info['Forced Down'] = bool(svc.is_forced_down)
    held = lease.holder(compute, host, svc)
    info['Lease Kind'] = held.kind if held else None
    info['Lease Owner'] = held.owner if held else None
    info['Lease Since'] = held.since if held else None
    info['Lease Expires'] = held.expires_text if held else None
    beat = timeutil.parse_time(svc.updated_at)
    info['Last Heartbeat'] = beat.strftime('%Y-%m-%dT%H:%M:%SZ') if beat \
        else None
    info['Heartbeat Age Seconds'] = (int((now - beat).total_seconds())
                                     if beat else None)
    hv = _hypervisor_for(compute, host)
    info['Hypervisor'] = hv.name if hv else None
    info['Hypervisor State'] = hv.state if hv else None
    info['Hypervisor Status'] = hv.status if hv else None
    servers = calls.call_with_retry(lambda: list(compute.servers(
        details=True, all_projects=True, compute_host=host)))
    by_status = collections.Counter(s.status for s in servers)
    info['Instances'] = len(servers)
    info['Running Instances'] = sum(
        1 for s in servers if s.power_state == nova.POWER_RUNNING)
    info['Instances By Status'] = dict(sorted(by_status.items()))
    info['Servers'] = [
        {'name': s.name, 'id': s.id, 'status': s.status,
         'project_id': s.project_id}
        for s in sorted(servers, key=lambda s: (s.name or '', s.id))]
    migrations = calls.call_with_retry(lambda: list(compute.migrations(
        host=host)))
    # 'finished' (a cold migration or resize waiting for its confirmation)
    # moves nothing any more: not in progress.
    active = [m for m in migrations if m.status not in
              nova.MIGRATION_FINAL + ('finished',)]
    info['Migrations In Progress'] = [_migration_line(m) for m in active]
    return info


def show(conn, request):
    """``compute node show``: what the API says (and, with ``local``, what
    the node itself says; with ``audit``, what the post-drain audit finds)
    about ``request.host``; an ordered dict."""
    if not (request.host or '').strip():
        raise errors.UsageError('the host name is empty')
    info = gather(conn.compute, request.host)
    if request.audit:
        # The post-drain audit (ops/drain/audit.py), on its own: is it
        # drained?
        result = drain.audit.audit_host(conn, request.host)
        info['Audit Clean'] = result.clean
        info['Audit Findings'] = [f.as_dict() for f in result.findings]
        info['Audit Sources'] = dict(result.sources)
    if request.local:
        fields, ok = local_service.local_report(
            log_file=request.compute_log, prefer=request.host)
        info.update(fields)
        info['Local OK'] = ok
    return info
