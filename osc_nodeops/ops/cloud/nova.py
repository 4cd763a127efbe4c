"""Nova, as the engine and the runbooks use it: the compute microversions
both sides speak (``Features``), nova's status words, and the
nova-compute service of a host.
"""

import logging
import typing

from openstack import utils as sdk_utils

from osc_nodeops.ops.cloud import calls

LOG = logging.getLogger(__name__)

# Migration statuses (nova/objects/migration.py and the compute manager).
MIGRATION_FAILED = ('failed', 'error', 'cancelled', 'reverted')
MIGRATION_DONE = ('completed', 'confirmed', 'done')
MIGRATION_FINAL = MIGRATION_FAILED + MIGRATION_DONE

# nova's power_state RUNNING (nova/compute/power_state.py).
POWER_RUNNING = 1

COMPUTE_BINARY = 'nova-compute'


class _Discovered(object):
    """What ``openstack.utils.supports_microversion`` reads from an adapter
    (endpoint data and the default microversion), discovered once."""

    def __init__(self, server_min, server_max, pinned):
        self.min_microversion = server_min
        self.max_microversion = server_max
        self.default_microversion = pinned
        self.service_type = 'compute'
        self.service_name = None

    def get_endpoint_data(self):
        return self


class Features(object):
    """Compute microversions negotiated with the cloud.

    ``effective`` is the lower of what the server advertises and what the
    user pinned (``--os-compute-api-version`` / clouds.yaml); openstacksdk
    then caps each request at what its resource classes know (it picks the
    microversion per call).  Never assumes the newest.  The version
    arithmetic is openstacksdk's (``supports_microversion``).
    """

    def __init__(self, server_max=None, server_min='2.1', pinned=None):
        self.server_max = server_max
        self.server_min = server_min or '2.1'
        self.pinned = pinned
        self._view = _Discovered(self.server_min, server_max or '2.1',
                                 pinned)
        try:
            eff = sdk_utils.maximum_supported_microversion(
                typing.cast(typing.Any, self._view),
                pinned or self._view.max_microversion)
        except Exception:  # an unreadable version: the base API
            eff = None
        self.effective = eff or '2.1'

    @classmethod
    def from_proxy(cls, compute):
        ep = None
        try:
            ep = compute.get_endpoint_data()
        except Exception as exc:  # discovery failed: assume the base API
            LOG.debug('microversion discovery failed: %s', exc)
        server_max = getattr(ep, 'max_microversion', None) if ep else None
        server_min = getattr(ep, 'min_microversion', None) if ep else None
        if isinstance(server_max, tuple):
            server_max = '%d.%d' % server_max[:2]
        if isinstance(server_min, tuple):
            server_min = '%d.%d' % server_min[:2]
        pinned = getattr(compute, 'default_microversion', None)
        if not isinstance(pinned, str):
            pinned = None
        return cls(server_max=server_max, server_min=server_min,
                   pinned=pinned)

    def supports(self, version):
        try:
            return sdk_utils.supports_microversion(
                typing.cast(typing.Any, self._view), version)
        except Exception:
            return False

    # Named features used by the runbook.
    @property
    def block_migration_auto(self):
        return self.supports('2.25')

    @property
    def live_host_without_force(self):
        return self.supports('2.30')

    @property
    def cold_migrate_host(self):
        return self.supports('2.56')

    @property
    def migration_changes_since(self):
        return self.supports('2.59')

    @property
    def abort_running(self):
        return self.supports('2.24')

    @property
    def abort_queued(self):
        return self.supports('2.65')

    @property
    def migration_progress(self):
        # GET /servers/{id}/migrations/{id}: bytes still to copy
        return self.supports('2.23')

    @property
    def force_complete(self):
        return self.supports('2.22')

    def __repr__(self):
        return '<Features effective=%s server_max=%s pinned=%s>' % (
            self.effective, self.server_max, self.pinned)


def find_compute_service(compute, host, not_found=LookupError):
    """The nova-compute service of ``host`` (exact host name match: nova
    filters by host, we check again); raise ``not_found`` with one line if
    there is none."""
    services = [s for s in calls.call_with_retry(
        lambda: list(compute.services(host=host, binary=COMPUTE_BINARY)))
        if s.host == host and s.binary == COMPUTE_BINARY]
    if not services:
        raise not_found('no nova-compute service on host %r' % host)
    return services[0]

