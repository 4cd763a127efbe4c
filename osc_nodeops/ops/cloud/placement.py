"""The one placement client (``Client``), and the allocations of the
servers a ``--via-db`` move takes along.

The drain's pre-flight and audit read providers, inventories, usages and
allocations through ``Client``; each call names its microversion.

nova's evacuation moves a server's allocation itself; the guide's SQL move
does not, so the scheduler would go on counting the servers on the dead
host.  This module moves each server's allocation from the dead host's
resource provider to the target host's through placement's API
(``GET``/``PUT /allocations/{consumer}``), and puts it back for ``--undo``.

Every write carries the consumer generation read just before it
(microversion 1.28, where consumer generations came in, and the one nova's
report client writes allocations with; from 1.38 on a PUT would have to
restate the consumer type, which 1.28 leaves as it is): if anything changed
the consumer in between, placement answers 409 and writes nothing.  Only the
resources on the dead host's own provider move, unchanged; resources on
other providers (a sharing storage pool) stay.  No SQL touches placement.
"""

import dataclasses

from openstack import exceptions as sdk_exc
from openstack import utils as sdk_utils

from osc_nodeops import errors
from osc_nodeops.ops.cloud import calls

MICROVERSION = '1.28'   # consumer generations on GET/PUT /allocations
TREE_MICROVERSION = '1.14'  # ?in_tree= on GET /resource_providers
FORBIDDEN_MICROVERSION = '1.22'  # ?required=!TRAIT (forbidden traits)
BASE = '1.0'            # what every placement answers
# The trait nova puts on the provider of a disabled compute service.
DISABLED_TRAIT = 'COMPUTE_STATUS_DISABLED'
HTTP_TIMEOUT = calls.DEFAULT_API_TIMEOUT  # seconds, each request
PUT_ATTEMPTS = 3        # a 409 (generation moved on) is read again


@dataclasses.dataclass
class Move(object):
    """The allocation of one consumer (a server) and what it becomes."""

    consumer: str
    # provider UUID -> {resource class: amount}
    before: dict | None = None
    after: dict | None = None
    project_id: str | None = None
    user_id: str | None = None
    problem: str | None = None       # why it cannot move (nothing is written)
    note: str | None = None          # why nothing needs to move

    @property
    def movable(self):
        return self.problem is None and self.before != self.after

    def describe(self, names):
        def side(alloc):
            return '; '.join('%s %s' % (names.get(rp, rp), _resources(res))
                             for rp, res in sorted(alloc.items())) or 'none'
        return '%s -> %s' % (side(self.before or {}), side(self.after or {}))

    def to_journal(self):
        return {'consumer': self.consumer, 'before': self.before,
                'after': self.after, 'project_id': self.project_id,
                'user_id': self.user_id}


def _resources(res):
    return ', '.join('%s=%s' % (rc, n) for rc, n in sorted(res.items()))


class Client(object):
    """The placement calls of osc-nodeops, each at its own microversion
    (as osc-placement asks), with a timeout and retries of transient
    faults.

    ``read(fn)``: how each request is made (default: ``call_with_retry``
    with ``sleep``), e.g. a counting reader; ``timeout``: seconds per
    request, None for the session's (``--api-timeout``).
    """

    def __init__(self, placement, sleep=None, read=None,
                 timeout=HTTP_TIMEOUT):
        self.placement = placement
        self.sleep = sleep
        self.read = read or self._retried
        self.timeout = timeout

    def _retried(self, fn):
        return calls.call_with_retry(fn, sleep=self.sleep)

    def _call(self, method, url, version=MICROVERSION, **kwargs):
        if self.timeout is not None:
            kwargs['timeout'] = self.timeout

        def once():
            resp = self.placement.request(
                url, method, microversion=version, raise_exc=False,
                **kwargs)
            sdk_exc.raise_from_response(resp)
            return resp.json() if resp.content else {}
        return self.read(once)

    def check_version(self):
        if not sdk_utils.supports_microversion(self.placement, MICROVERSION):
            raise errors.Refused(
                'placement does not offer microversion %s (consumer '
                'generations): the allocations cannot be moved safely'
                % MICROVERSION)

    def _providers(self, version, **params):
        return self._call('GET', '/resource_providers', version=version,
                          params=params).get('resource_providers') or []

    def provider(self, name):
        """The UUID of the resource provider named ``name`` (nova names a
        compute node's provider after its hypervisor_hostname)."""
        found = self._providers(MICROVERSION, name=name)
        if not found:
            raise errors.NotFound('placement has no resource provider %r'
                                  % name)
        return found[0]['uuid']

    def named(self, name):
        """UUIDs of the providers named ``name`` (none or one)."""
        return [rp['uuid'] for rp in self._providers(BASE, name=name)]

    def tree(self, root):
        """UUIDs of the providers in ``root``'s tree (nested providers)."""
        return {rp['uuid'] for rp in self._providers(TREE_MICROVERSION,
                                                     in_tree=root)}

    def enabled(self):
        """UUIDs of the providers nova has not disabled (without the
        ``COMPUTE_STATUS_DISABLED`` trait)."""
        return {rp['uuid'] for rp in self._providers(
            FORBIDDEN_MICROVERSION, required='!' + DISABLED_TRAIT)}

    def inventories(self, rp):
        """{resource class: {total, reserved, allocation_ratio, ...}}."""
        return self._call('GET', '/resource_providers/%s/inventories' % rp,
                          version=BASE).get('inventories', {})

    def usages(self, rp):
        """{resource class: amount used} on provider ``rp``."""
        return self._call('GET', '/resource_providers/%s/usages' % rp,
                          version=BASE).get('usages', {})

    def held(self, rp):
        """{consumer: {resource class: amount}} on provider ``rp``."""
        doc = self._call('GET', '/resource_providers/%s/allocations' % rp,
                         version=BASE)
        return {consumer: dict(a.get('resources') or {})
                for consumer, a in (doc.get('allocations') or {}).items()}

    def allocation(self, consumer):
        """``(allocations, generation, project_id, user_id)``, allocations
        as provider UUID -> resources; ``({}, None, ...)`` for none."""
        doc = self._call('GET', '/allocations/%s' % consumer)
        allocs = {rp: dict(a.get('resources') or {})
                  for rp, a in (doc.get('allocations') or {}).items()}
        return (allocs, doc.get('consumer_generation'),
                doc.get('project_id'), doc.get('user_id'))

    def put(self, consumer, allocs, generation, project_id, user_id):
        self._call('PUT', '/allocations/%s' % consumer, json={
            'allocations': {rp: {'resources': res}
                            for rp, res in allocs.items()},
            'consumer_generation': generation,
            'project_id': project_id, 'user_id': user_id})


def plan(client, consumers, source_rp, target_rp):
    """A :class:`Move` per consumer: its resources on ``source_rp`` go to
    ``target_rp``; reads only.  ``Move.note`` says why one does not move."""
    tree = client.tree(source_rp) - {source_rp}
    moves = []
    for consumer in consumers:
        allocs, _, project, user = client.allocation(consumer)
        move = Move(consumer, before=allocs, after=dict(allocs),
                    project_id=project, user_id=user)
        moves.append(move)
        nested = sorted(set(allocs) & tree)
        if nested:
            move.problem = ('allocation on nested resource provider(s) %s '
                            'of the dead host: not moved' % ', '.join(nested))
        elif source_rp in allocs and target_rp in allocs:
            move.problem = ('allocation on both hosts\' providers (a move '
                            'in progress?): not moved')
        elif source_rp in allocs:
            after = dict(move.after or {})
            after[target_rp] = after.pop(source_rp)
            move.after = after
        elif not allocs:
            move.note = 'no allocation in placement: nothing to move'
        elif target_rp in allocs:
            move.note = 'allocation already on the target host\'s provider'
        else:
            move.problem = ('allocation is on neither host\'s resource '
                            'provider: not moved')
    return moves


def _replace(client, consumer, expected, wanted):
    """PUT ``wanted`` if the consumer still holds ``expected``.

    Returns ``'done'``, ``'already'`` (it holds ``wanted``), ``'gone'`` (no
    allocation left: the server was deleted) or raises ``Refused`` naming
    what changed.  A 409 (the generation moved on between our read and our
    write) is read again.
    """
    def once():
        allocs, gen, project, user = client.allocation(consumer)
        if allocs == wanted:
            return 'already'
        if not allocs:
            return 'gone'
        if allocs != expected:
            raise errors.Refused(
                'allocation of %s changed since it was recorded (now %s)' % (
                    consumer, '; '.join('%s %s' % (rp, _resources(r))
                                        for rp, r in sorted(allocs.items()))))
        client.put(consumer, wanted, gen, project, user)
        return 'done'
    return calls.call_with_retry(
        once, attempts=PUT_ATTEMPTS, backoff=None,
        retry_if=lambda exc: isinstance(exc, sdk_exc.ConflictException))


def apply(client, move):
    """Move one allocation: ``'done'``, ``'already'`` or ``'gone'``."""
    return _replace(client, move.consumer, move.before, move.after)


def classify_undo(client, record):
    """What undo would do for one journal record, reading only:
    ``'todo'``, ``'already'``, ``'gone'`` or ``'changed'``."""
    allocs, _, _, _ = client.allocation(record['consumer'])
    if allocs == record['before']:
        return 'already'
    if not allocs:
        return 'gone'
    if allocs == record['after']:
        return 'todo'
    return 'changed'


def restore(client, record):
    """Put one journal record's allocation back (``'done'`` ...)."""
    return _replace(client, record['consumer'], record['after'],
                    record['before'])
