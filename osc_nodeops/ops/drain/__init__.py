"""Planned maintenance: drain a compute host (S1-S4) and undrain it (S6-S7).

``drain_host`` disables the host's nova-compute service, plans a method for
every server on it (all projects), moves them with the engine
(``ops/engine/``), verifies each move and re-lists the host.
``undrain_host`` re-enables the service and, on request, moves home every
server whose recorded origin is the host.

The origin lives in the cloud, on the server, as metadata:

``nodeops:drain``
    ``method=<live|cold|live-suspended> at=<UTC time> from=<host>``,
    written just before the move is issued (the intent: a rerun of
    ``drain`` after a crash recognises its own in-flight moves by it and
    picks them up instead of issuing new ones); after the verified move,
    ``migration=<UUID>`` is added.
``nodeops:origin``
    the host the server was drained from, written only after the move.

The project can write its servers' metadata, so undrain trusts only the
admin-only migration record the marker names (``trusted_origin``).
``undrain --migrate-back`` removes both keys from the servers that made it
home.

The package, each module importing only the ones below it (this file
gathers them):

``run``         execution: ``validate``, ``drain_host(s)``, ``undrain_host``
``plan``        S2 / S7: ``plan_drain``, ``plan_undrain``, a stopped run's rows
``policy``      the owner's maintenance policy, the ladder a dry run shows
``actions``     the moves (engine ``Action``s)
``origin``      the origin and intent records on the server
``blame``       whose problem each row shows
``services``    the nova-compute service steps (S1, S6), an earlier lease
``preflight``   blockers and the capacity model (pure); ``gather`` reads the
                cloud for it
``audit``       after the moves: do nova and placement agree it is drained?
"""

import dataclasses
import logging

from osc_nodeops import errors
from osc_nodeops.ops import engine
from osc_nodeops.ops import runtime
from osc_nodeops.ops.cloud import nova
from osc_nodeops.ops.drain import actions
from osc_nodeops.ops.drain import audit as audit  # drain.audit: node show
from osc_nodeops.ops.drain import blame
from osc_nodeops.ops.drain import origin
from osc_nodeops.ops.drain import plan
from osc_nodeops.ops.drain import policy
from osc_nodeops.ops.drain import run
from osc_nodeops.ops.drain import services as nova_services

LOG = logging.getLogger(__name__)

# What ops/maintain.py, v1 and the tests use, as ``drain.NAME``.
HostReport = run.HostReport
validate = run.validate
check_arguments = run.check_arguments
check_excludes = run.check_excludes
drain_host = run.drain_host
drain_hosts = run.drain_hosts
fleet_for = run.fleet_for
stays = run.stays
undrain_host = run.undrain_host
plan_drain = plan.plan_drain
POLICY_KEY = policy.POLICY_KEY
POLICY_VALUES = policy.POLICY_VALUES
owner_policy = policy.owner_policy
LiveMigrate = actions.LiveMigrate
block_migration_for = actions.block_migration_for
ORIGIN_KEY = origin.ORIGIN_KEY
MARKER_KEY = origin.MARKER_KEY
marker_value = origin.marker_value
parse_marker = origin.parse_marker
BLAME_NONE = blame.BLAME_NONE
compute_service = nova_services.compute_service
set_disabled = nova_services.set_disabled
REASON_MAX = nova_services.REASON_MAX
lease_owner = nova_services.lease_owner
parse_lease = nova_services.parse_lease
with_lease = nova_services.with_lease
check_lease = nova_services.check_lease


@dataclasses.dataclass
class Options(engine.ExecutorOptions):
    """The request of ``drain`` / ``undrain``: what the command line says
    (the executor's options at ``engine.ExecutorOptions``' defaults)."""

    hosts: tuple = ()
    target_host: str | None = None
    block_migration: str = 'auto'
    on_timeout: str = 'abort'
    step_timeout: float | None = None  # each further --on-timeout step
    # a live migration's own --timeout: seconds per GiB it copies
    timeout_per_gib: float | None = None
    # a running live migration whose bytes left have not dropped for this
    # long goes to the ladder at once
    stall_timeout: float | None = None
    # 'cold': a live move that failed is cold-migrated
    fallback: str | None = None
    honour_skip: bool = False  # owners' nodeops:maintenance=skip is obeyed
    exclude: tuple = ()
    move_suspended: bool = False
    # the slot scheduler (ops/engine/slots.py): moves at once out of one
    # host, and into one host
    source_slots: int = 1
    dest_slots: int = 1
    dry_run: bool = False
    allow_skipped: bool = False
    allow_partial: bool = False
    reason: str | None = None
    keep_disabled: bool = False
    migrate_back: bool = False
    break_lease: bool = False



@dataclasses.dataclass
class Report(runtime.Report):
    """What ``drain`` / ``undrain`` did: one ``HostReport`` per host.

    ``error``: one line, when an error stopped the run after rows were
    gathered (they are kept: the command prints them, then the error).
    """

    hosts: list = dataclasses.field(default_factory=list)
    error: str | None = None

    def __post_init__(self):
        self.error = self.error or next(
            (h.error for h in self.hosts if h.error), None)

    @property
    def items(self):
        return [item for host in self.hosts for item in host.items]

    @property
    def ok(self):
        return not self.error and all(host.ok for host in self.hosts)

    @property
    def interrupted(self):
        return any(host.interrupted for host in self.hosts)


def drain(conn, request, events=None, runtime=None):
    """``compute node drain``: validate, then S1-S4 for every host.

    Returns a :class:`Report`.  Raises an ``errors.NodeOpsError`` before
    anything is changed when the request cannot be done.
    """
    compute = conn.compute
    hosts = list(request.hosts)
    if not hosts:
        raise errors.UsageError('name at least one host')
    services = run.validate(compute, hosts, request)
    run.check_excludes(compute, hosts, request.exclude)
    features = nova.Features.from_proxy(compute)
    # For -v / --debug only (OSC's console shows INFO from -v on).
    LOG.info('compute API microversion %s (server max %s)',
             features.effective, features.server_max)
    reports: list = []
    try:
        run.drain_hosts(
            compute, hosts, services, request, features=features,
            events=events, reason_default=nova_services.default_reason(conn),
            runtime=runtime, reports=reports, conn=conn)
    except Exception as exc:
        if not reports:
            raise
        # A later host failed: keep the rows of the ones before.
        LOG.debug('drain stopped', exc_info=True)
        return Report(reports, error='%s: %s' % (
            hosts[len(reports)], errors.one_line(exc)))
    return Report(reports)


def undrain(conn, request, events=None, runtime=None):
    """``compute node undrain``: S6 (and S7 with ``--migrate-back``).

    Returns a :class:`Report` of the one host.
    """
    if request.keep_disabled and request.migrate_back:
        raise errors.UsageError(
            '--keep-disabled and --migrate-back cannot be combined: the '
            'scheduler does not place servers on a disabled host')
    if request.keep_disabled:
        raise errors.UsageError(
            '--keep-disabled without --migrate-back would do nothing (and '
            'cannot go with it): to leave the host disabled, do not run '
            'undrain')
    if len(request.hosts) != 1:
        raise errors.UsageError('undrain takes exactly one host')
    host = request.hosts[0]
    compute = conn.compute
    services = run.validate(compute, [host], request)
    features = nova.Features.from_proxy(compute)
    return Report([run.undrain_host(compute, host, services[host], request,
                                features=features, events=events,
                                runtime=runtime)])
