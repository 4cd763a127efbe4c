"""Runbook S11: inspect a failed instance's disk, on its compute node.

One entry point, :func:`inspect` (``openstack instance inspect-disk``).  The
modules, in the order a session uses them:

``request``
    the request, its checks (root, approval, arguments) and the server,
    domain and disk it names;
``journal``
    what a session has in place, written durably before each step;
``connectors``
    the disk as a block device: :class:`~connectors.NbdConnector`,
    :class:`~connectors.FuseConnector`;
``partition``
    which partition, its device, mount options;
``session``
    the six steps, teardown in ``finally``, clean-up of stale sessions;
``guest``
    what the operator does with the mounted tree (list, cat, copy-out,
    exec, shell).

All root-only work goes through ``osc_nodeops.privileged``; these modules
only decide.
"""

import dataclasses

from osc_nodeops.ops import runtime
from osc_nodeops.ops.inspect_disk import guest
from osc_nodeops.ops.inspect_disk.connectors import allocate_nbd  # noqa
from osc_nodeops.ops.inspect_disk.connectors import choose as choose_connector  # noqa
from osc_nodeops.ops.inspect_disk.guest import cat_path  # noqa
from osc_nodeops.ops.inspect_disk.guest import COPY_COLUMNS
from osc_nodeops.ops.inspect_disk.guest import copy_out  # noqa
from osc_nodeops.ops.inspect_disk.guest import exec_command  # noqa
from osc_nodeops.ops.inspect_disk.guest import guest_path  # noqa
from osc_nodeops.ops.inspect_disk.guest import LIST_COLUMNS
from osc_nodeops.ops.inspect_disk.guest import list_path  # noqa
from osc_nodeops.ops.inspect_disk.host import free_nbd_devices  # noqa
from osc_nodeops.ops.inspect_disk.host import nbd_module_loaded  # noqa
from osc_nodeops.ops.inspect_disk.journal import Journal  # noqa
from osc_nodeops.ops.inspect_disk.journal import list_journals  # noqa
from osc_nodeops.ops.inspect_disk.partition import choose_partition  # noqa
from osc_nodeops.ops.inspect_disk.partition import mount_options  # noqa
from osc_nodeops.ops.inspect_disk.partition import partitions  # noqa
from osc_nodeops.ops.inspect_disk import request as _request
from osc_nodeops.ops.inspect_disk.request import check_arguments  # noqa
from osc_nodeops.ops.inspect_disk.request import check_target  # noqa
from osc_nodeops.ops.inspect_disk.request import DEFAULT_INSTANCES_PATH  # noqa
from osc_nodeops.ops.inspect_disk.request import Disk  # noqa
from osc_nodeops.ops.inspect_disk.request import domain_disks  # noqa
from osc_nodeops.ops.inspect_disk.request import InspectError
from osc_nodeops.ops.inspect_disk.request import instances_path  # noqa
from osc_nodeops.ops.inspect_disk.request import local_host  # noqa
from osc_nodeops.ops.inspect_disk.request import Request  # noqa
from osc_nodeops.ops.inspect_disk.request import resolve_server  # noqa
from osc_nodeops.ops.inspect_disk.request import select_disk  # noqa
from osc_nodeops.ops.inspect_disk.request import Target  # noqa
from osc_nodeops.ops.inspect_disk import session as _session
from osc_nodeops.ops.inspect_disk.session import cleanup
from osc_nodeops.ops.inspect_disk.session import Interrupted
from osc_nodeops.ops.inspect_disk.session import Session  # noqa
from osc_nodeops.ops.inspect_disk.session import STEPS  # noqa
from osc_nodeops.ops.inspect_disk.session import teardown  # noqa

CLEANUP_COLUMNS = ('Server', 'Instance', 'Step', 'Result', 'Detail')


@dataclasses.dataclass
class Report(runtime.Report):
    """What :func:`inspect` did.  ``columns`` and ``rows`` are the table
    (``columns`` None: the action wrote its own output); not ``ok``: the
    command exits 1."""
    action: str
    columns: tuple | None = None
    rows: list | None = None
    steps: list = dataclasses.field(default_factory=list)
    ok: bool = True


def _inspector(req):
    args = req.action_args
    if req.action == 'list':
        return lambda mp: guest.list_path(mp, args[0])
    if req.action == 'cat':
        return lambda mp: guest.cat_path(mp, args[0], req.out)
    if req.action == 'copy-out':
        return lambda mp: guest.copy_out(mp, args[0], args[1])
    if req.action == 'exec':
        return lambda mp: guest.exec_command(mp, args[0])
    return guest.shell


def inspect(conn, req, events=None, open_libvirt=None):
    """``openstack instance inspect-disk``: one session, or ``--cleanup``.

    ``conn`` is an SDK connection (None for ``cleanup``: it needs no API).
    Raises ``osc_nodeops.errors`` exceptions (a bad request, a refusal, a
    failed step, a signal); returns a :class:`Report`.
    """
    events = events or (lambda msg: None)
    _request.check(req)
    if req.action == 'cleanup':
        rows = cleanup(req.state_dir, open_libvirt, match=req.server,
                       events=events, audit_log=req.audit_log)
        if not rows:
            events('nothing to clean up in %s' % req.state_dir)
        return Report('cleanup', CLEANUP_COLUMNS, [r.row() for r in rows],
                      ok=not any(r.result in ('failed', 'busy')
                                 for r in rows))
    session = _session.Session(req, events=events, open_libvirt=open_libvirt,
                               compute=conn.compute if conn else None)
    try:
        result, steps = session.run(_inspector(req))
    except Interrupted as exc:
        raise InspectError('interrupted by %s; teardown done' % exc)
    report = Report(req.action, steps=steps)
    if req.action == 'list':
        report.columns, report.rows = LIST_COLUMNS, result
    elif req.action == 'copy-out':
        report.columns, report.rows = COPY_COLUMNS, result
    elif req.action in ('exec', 'shell') and result:
        events('%s exited %d' % (req.action, result))
        report.ok = False
    return report
