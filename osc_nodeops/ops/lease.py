"""The host lease: one osc-nodeops run at a time on a compute host.

Where it lives
    In the cloud, admin-only, in the metadata of one host aggregate that
    holds no host (``osc-nodeops-leases``, created by the first run that
    needs it): one key per host, ``osc-nodeops-lease:HOST``, whose value is
    ``KIND owner=USER@MACHINE:PID id=TOKEN at=TIME renewed=TIME ttl=SECONDS``.
    Unlike the service's disabled reason (where versions before 2.0 kept
    it), it survives enabling the host, so ``undrain --migrate-back`` holds
    it while servers move home.  ``compute node list`` / ``show`` print it.

How it is taken (nova has no compare-and-swap)
    Read the entry; refuse when another live run holds it; write ours (a
    fresh random token); wait a short random delay (``SETTLE``); read it
    back.  Whoever reads back their own token holds the host; the other
    writer reads a foreign token and refuses (exit 1, nothing changed).

How it is kept
    ``check()`` reads it again before every step that changes something
    (each batch of moves, undrain's enable, each server of recover-all) and
    raises ``LeaseLost`` when another run has it now.  A heartbeat thread
    (``renew()`` every ``RENEW_EVERY`` seconds) rewrites ``renewed`` while
    the holder lives.  An entry whose ``renewed + ttl`` has passed is taken
    over without ``--break-lease`` (``TTL``: 120 s = four missed renewals,
    enough for a nova restart or a minute of transient faults, and a dead
    run's host is free again within two minutes).  ``--break-lease`` takes
    a live one.  A run on this machine whose process is gone is taken over
    at once.

Leases of earlier versions (``[osc-nodeops lease owner=... at=...]`` at
the end of a disabled service's reason) are honoured as live with no
expiry (those versions never renew them); taking one over removes it
from the reason.

API (everything else is private)::

    lk = lease.Lease(compute, host, kind='drain', break_lease=False,
                     events=events)
    lk.acquire()     # or: with lease.Lease(...) as lk:
    lease.acquire_all([lk1, lk2])  # a wave's hosts: one settle wait
    taking = lease.write_all([lk1, lk2])  # written; read-only work now,
    taking.hold()    # then the rest of the wait and the read-backs
    taking.withdraw()  # or: every entry put back as it was
    lk.took          # the Holder taken over (expired, gone, broken) or None
    lk.check()       # before each change; raises LeaseLost
    lk.release()     # drop our entry (only if it is still ours)
    lk.abandon()     # stop renewing, leave the entry to expire
    lease.holder(compute, host, service=None)   # who holds it (or None)
    lease.holders(compute, services)            # {host: Holder}, one call
"""

import dataclasses
import datetime
import getpass
import logging
import os
import random
import re
import secrets
import socket
import threading

from openstack import exceptions as sdk_exc

from osc_nodeops import errors
from osc_nodeops import timeutil
from osc_nodeops.ops import engine
from osc_nodeops.ops.cloud import calls
from osc_nodeops.ops.cloud import nova

LOG = logging.getLogger(__name__)

AGGREGATE = 'osc-nodeops-leases'
KEY_PREFIX = 'osc-nodeops-lease:'
TTL = 120           # seconds after the last renewal: expired
RENEW_EVERY = 30    # seconds between two renewals
SETTLE = (1.0, 2.0)  # seconds (random) between our write and the read-back

ENTRY_RE = re.compile(
    r'^(?P<kind>\S+) owner=(?P<owner>\S+) id=(?P<token>\S+) at=(?P<at>\S+)'
    r' renewed=(?P<renewed>\S+) ttl=(?P<ttl>\d+)$')
# The format of versions before 2.0, at the end of a disabled reason.
LEGACY_RE = re.compile(r'\s*\[osc-nodeops lease owner=(\S+) at=(\S+)\]\s*$')
REASON_MAX = 255  # nova's services.disabled_reason column


class LeaseRefused(errors.Refused):
    """Another live run holds the host: nothing was changed."""


class LeaseLost(errors.Refused):
    """The lease this run held is another run's now: stop changing."""


def operator_name(conn=None):
    """The cloud user name of ``conn``, else the local user's."""
    user = None
    try:
        user = conn.config.auth.get('username') if conn is not None else None
    except Exception:
        user = None
    if not user:
        try:
            user = getpass.getuser()
        except Exception:
            user = 'unknown'
    return user


def owner_name(conn=None):
    """``USER@MACHINE:PID``: who holds a lease (this process)."""
    user = operator_name(conn)
    return '%s@%s:%d' % (''.join(user.split()) or 'unknown',
                         socket.gethostname() or 'localhost', os.getpid())


@dataclasses.dataclass
class Holder(object):
    """One lease as read from the cloud."""

    owner: str
    since: str                 # API time text (``at=``)
    kind: str = 'drain'
    token: str | None = None
    renewed: str | None = None
    ttl: int | None = None     # None: an earlier version's (no expiry)

    @property
    def legacy(self):
        return self.ttl is None

    @property
    def expires(self):
        """Aware datetime, or None (no expiry: an earlier version's)."""
        if self.ttl is None:
            return None
        renewed = timeutil.parse_time(self.renewed)
        return renewed + datetime.timedelta(seconds=self.ttl) \
            if renewed else timeutil.EPOCH

    @property
    def expires_text(self):
        return (timeutil.api_time(self.expires) if self.expires else
                'never (written by an earlier osc-nodeops)')

    def expired(self, now=None):
        return (not self.legacy
                and (now or timeutil.utcnow()) > self.expires)

    def gone(self):
        """True when the holder ran on this machine and its process is
        gone."""
        who, _, pid = self.owner.rpartition(':')
        machine = who.rpartition('@')[2]
        if machine != (socket.gethostname() or 'localhost') or \
                not pid.isdigit():
            return False
        return not os.path.exists('/proc/%s' % pid)

    def entry(self):
        return '%s owner=%s id=%s at=%s renewed=%s ttl=%s' % (
            self.kind, self.owner, self.token, self.since, self.renewed,
            self.ttl)

    def describe(self):
        return '%s, since %s, expires %s' % (self.owner, self.since,
                                             self.expires_text)


def parse_entry(value):
    m = ENTRY_RE.match((value or '').strip())
    if not m:
        return None
    return Holder(owner=m.group('owner'), since=m.group('at'),
                  kind=m.group('kind'), token=m.group('token'),
                  renewed=m.group('renewed'), ttl=int(m.group('ttl')))


# ------------------------------------------- the earlier versions' format

def parse_legacy(reason):
    """``(owner, at)`` of an earlier version's lease in a disabled reason,
    or None."""
    m = LEGACY_RE.search(reason or '')
    return (m.group(1), m.group(2)) if m else None


def without_legacy(reason):
    return LEGACY_RE.sub('', reason or '')


def with_legacy(reason, owner, now=None):
    """A reason carrying an earlier version's lease tag (``maintain`` still
    writes it until it holds a ``Lease``)."""
    tag = ' [osc-nodeops lease owner=%s at=%s]' % (
        owner, timeutil.api_time(now or timeutil.utcnow()))
    text = without_legacy(reason)
    return text[:max(0, REASON_MAX - len(tag))] + tag


def legacy_holder(service):
    """The earlier version's lease a disabled ``service`` carries."""
    if service is None or service.status != 'disabled':
        return None
    held = parse_legacy(service.disabled_reason)
    if held is None:
        return None
    return Holder(owner=held[0], since=held[1],
                  kind='maintain' if held[0].startswith('maintain:')
                  else 'drain')


# ----------------------------------------------------------------- store

class Store(object):
    """The leases aggregate: one metadata key per host."""

    def __init__(self, compute, sleep=None):
        self.compute = compute
        self.sleep = sleep
        self._id = None

    def _call(self, fn):
        return calls.call_with_retry(fn, sleep=self.sleep)

    def _aggregate(self, create=False):
        """The leases aggregate (its metadata fresh), or None."""
        if self._id is not None:
            try:
                return self._call(
                    lambda: self.compute.get_aggregate(self._id))
            except sdk_exc.NotFoundException:
                self._id = None
        for agg in self._call(lambda: list(self.compute.aggregates())):
            if agg.name == AGGREGATE:
                self._id = agg.id
                return agg
        if not create:
            return None
        try:
            agg = self._call(
                lambda: self.compute.create_aggregate(name=AGGREGATE))
        except sdk_exc.ConflictException:  # another run created it
            return self._aggregate()
        self._id = agg.id
        return agg

    def all(self):
        agg = self._aggregate()
        md = (agg.metadata or {}) if agg is not None else {}
        out = {}
        for key, value in md.items():
            if key.startswith(KEY_PREFIX):
                holder = parse_entry(value)
                if holder is not None:
                    out[key[len(KEY_PREFIX):]] = holder
        return out

    def get(self, host):
        agg = self._aggregate()
        if agg is None:
            return None
        return parse_entry((agg.metadata or {}).get(KEY_PREFIX + host))

    def put(self, host, holder):
        agg = self._aggregate(create=True)
        self._call(lambda: self.compute.set_aggregate_metadata(
            agg, {KEY_PREFIX + host: holder.entry()}))

    def delete(self, host):
        agg = self._aggregate()
        if agg is not None:
            self._call(lambda: self.compute.set_aggregate_metadata(
                agg, {KEY_PREFIX + host: None}))


def holder(compute, host, service=None):
    """Who holds ``host`` (a ``Holder``, maybe expired) or None."""
    return Store(compute).get(host) or legacy_holder(service)


def holders(compute, services):
    """``{host: Holder}`` for ``services`` (one call for all of them)."""
    found = Store(compute).all()
    out = {}
    for svc in services:
        held = found.get(svc.host) or legacy_holder(svc)
        if held is not None:
            out[svc.host] = held
    return out


def judge(host, held, break_lease=False, now=None, token=None):
    """May a run take ``held`` over?  Returns a note when it takes a lease
    over (expired, gone, broken), None when the host is free or ours;
    raises ``LeaseRefused`` (one line naming the holder) otherwise."""
    if held is None or (token is not None and held.token == token):
        return None
    what = 'the %s lease of %s' % (held.kind, held.describe())
    if held.expired(now):
        return 'took over %s: it expired (not renewed for %ss)' % (
            what, timeutil.seconds_text(held.ttl))
    if held.gone():
        return 'took over %s: that process is gone' % what
    if break_lease:
        return 'broke %s (--break-lease)' % what
    raise LeaseRefused(
        '%s is held by another osc-nodeops %s (%s). Wait for it to end; '
        'if that run is gone, rerun with --break-lease' % (
            host, held.kind, held.describe()))


def acquire_all(leases):
    """Take every lease of ``leases`` (the hosts of a wave) with one
    ``SETTLE`` wait for all of them, not one each (a wave of ten hosts
    waited 15 s before its first move): each entry written, one wait, each
    read back.  All or none: when one is refused (a live lease, a lost
    race), the entries written are withdrawn and ``LeaseRefused`` raised.
    Returns ``leases``.  ``write_all(leases).hold()``."""
    return write_all(leases).hold()


def write_all(leases):
    """The first half of ``acquire_all``: every entry written (all or
    none, as there), the settle wait begun.  Returns a ``Taking``: the
    caller does read-only work while the wait runs (a drain's capacity
    pre-pass), then ``hold()`` waits what is left of it and reads the
    entries back, or ``withdraw()`` puts them back as they were."""
    return Taking(leases)


class Taking(object):
    """Leases whose entries are written and not yet read back."""

    def __init__(self, leases):
        self.leases = list(leases)
        self.written = []
        self.until = None  # the end of the settle wait (runtime.clock)
        try:
            for lk in self.leases:
                lk._write()
                self.written.append(lk)
        except BaseException:
            self.withdraw()
            raise
        if self.leases:
            first = self.leases[0]
            self.until = first.ctx.runtime.clock() + random.uniform(
                *max(x.settle for x in self.leases))

    def hold(self):
        """What is left of the settle wait, then each entry read back:
        the leases, held; else (a race lost) every entry withdrawn and
        ``LeaseRefused`` raised."""
        try:
            if self.leases:
                first = self.leases[0]
                first.sleep(max(0.0, self.until - first.ctx.runtime.clock()))
            for lk in self.leases:
                lk._read_back()
        except BaseException:
            self.withdraw()
            raise
        return self.leases

    def withdraw(self):
        """Each entry written put back as it was (``Lease._withdraw``);
        a failure is left to the entry's expiry."""
        written, self.written = self.written, []
        for lk in written:
            try:
                lk._withdraw()
            except Exception:   # it expires
                LOG.debug('withdrawing a lease entry failed', exc_info=True)


# ----------------------------------------------------------------- lease

class Lease(object):
    """This run's lease on one host (see the module docstring)."""

    def __init__(self, compute, host, kind='drain', owner=None,
                 break_lease=False, events=None, ttl=None,
                 renew_every=None, settle=None, heartbeat=True,
                 runtime=None, store=None):
        self.compute = compute
        self.host = host
        self.kind = kind
        self.owner = owner or owner_name()
        self.break_lease = break_lease
        # The module's settings, read when the lease is made.
        self.ttl = TTL if ttl is None else ttl
        self.renew_every = RENEW_EVERY if renew_every is None else renew_every
        self.settle = SETTLE if settle is None else settle
        self.heartbeat = heartbeat
        # The wall clock of the expiry times and the read-back's sleep:
        # the run's ``runtime.Runtime``.
        self.ctx = engine.Context(compute, host, events=events,
                                  runtime=runtime)
        self.clock = self.ctx.runtime.now
        self.sleep = self.ctx.runtime.sleep
        self.store = store or Store(compute)
        self.token = secrets.token_hex(6)
        self.since = None
        self.took = None      # the Holder this run took over
        self.note = None      # what the operator is told about it
        self.held = False
        self.lost = None      # one line, once another run has it
        self.replaced = None  # the entry our first write overwrote
        self._stop = threading.Event()
        self._thread = None
        self._lock = threading.Lock()

    # -- the protocol
    def _entry(self):
        now = timeutil.api_time(self.clock())
        return Holder(owner=self.owner, since=self.since or now,
                      kind=self.kind, token=self.token, renewed=now,
                      ttl=self.ttl)

    def acquire(self):
        """Take the host or raise ``LeaseRefused`` (nothing changed but,
        when another run won the race, our own entry, now overwritten)."""
        return acquire_all([self])[0]

    def _write(self):
        """Refuse a live lease of another run, else write our entry."""
        service = nova.find_compute_service(self.compute, self.host,
                                            errors.NotFound)
        self.replaced = self.store.get(self.host)
        held = self.replaced or legacy_holder(service)
        if held is not None and held.legacy and held.owner in (
                self.owner, 'maintain:' + self.owner):
            held = None  # this process's own earlier-format tag (maintain)
        self.note = judge(self.host, held, self.break_lease,
                          now=self.clock(), token=self.token)
        if self.note:
            self.took = held
        mine = self._entry()
        self.since = mine.since
        self.store.put(self.host, mine)

    def _read_back(self):
        """Ours when our token reads back (else ``LeaseRefused``)."""
        back = self.store.get(self.host)
        if back is None or back.token != self.token:
            raise LeaseRefused(
                '%s is held by another osc-nodeops %s (%s): it took the '
                'host at the same time as this run' % (
                    self.host, back.kind if back else 'run',
                    back.describe() if back else 'its entry is gone'))
        self.held = True
        if self.took is not None and self.took.legacy:
            self._drop_legacy_tag()
        if self.note:
            self.ctx.emit('lease', '%s: %s' % (self.host, self.note))
        if self.heartbeat:
            self._thread = threading.Thread(
                target=self._beat, name='lease-%s' % self.host, daemon=True)
            self._thread.start()
        return self

    def _withdraw(self):
        """Undo ``_write`` (a wave refused before it changed anything):
        our entry, if it is still ours, replaced by the one it overwrote
        (a gone or expired run's stays as it was: what a later takeover
        reads) or dropped."""
        self._stop_beating()
        with self._lock:
            self._drop(put_back=self.replaced)
            self.held = False

    def _drop(self, put_back=None):
        """Our entry, if it is still ours, deleted (or ``put_back``)."""
        back = self.store.get(self.host)
        if back is not None and back.token == self.token:
            if put_back is not None:
                self.store.put(self.host, put_back)
            else:
                self.store.delete(self.host)

    def _drop_legacy_tag(self):
        svc = nova.find_compute_service(self.compute, self.host)
        if svc.status == 'disabled' and parse_legacy(svc.disabled_reason):
            target = svc.id if isinstance(svc.id, str) else svc
            self.ctx.api(self.compute.disable_service, target,
                         host=svc.host, binary=svc.binary,
                         disabled_reason=without_legacy(
                             svc.disabled_reason))

    def _lose(self, back):
        self.lost = ('%s: the lease was lost: %s' % (
            self.host, 'another osc-nodeops %s holds it now (%s)' % (
                back.kind, back.describe()) if back else
            'its entry was removed by someone else'))
        self.held = False
        self._stop.set()
        return self.lost

    def check(self):
        """Before a change: raise ``LeaseLost`` unless we still hold it."""
        if self.lost:
            raise LeaseLost(self.lost)
        with self._lock:
            back = self.store.get(self.host)
        if back is None or back.token != self.token:
            raise LeaseLost(self._lose(back))

    def renew(self):
        """Rewrite ``renewed`` if the entry is still ours; else mark the
        lease lost (the next ``check`` raises)."""
        with self._lock:
            if self.lost or not self.held:
                return
            back = self.store.get(self.host)
            if back is None or back.token != self.token:
                self._lose(back)
                self.ctx.emit('warning', self.lost)
                return
            self.store.put(self.host, self._entry())

    def _beat(self):
        while not self._stop.wait(self.renew_every):
            try:
                self.renew()
            except Exception as exc:  # the next beat tries again
                LOG.debug('renewing the lease failed', exc_info=True)
                self.ctx.emit('warning', '%s: renewing the lease failed '
                              '(%s); it expires at %s unless renewed' % (
                                  self.host, errors.one_line(
                                      exc, style=errors.STATUS),
                                  self.expires_text()))

    def expires_text(self):
        return self._entry().expires_text

    def _stop_beating(self):
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def release(self):
        """Drop our entry (if it is still ours)."""
        self._stop_beating()
        if not self.held:
            return
        with self._lock:
            self._drop()
            self.held = False

    def abandon(self):
        """Stop renewing; the entry expires ``ttl`` seconds later (a
        rerun on this machine takes it over at once)."""
        self._stop_beating()

    def __enter__(self):
        return self.acquire()

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.release()
        else:
            self.abandon()
        return False
