"""The progress of a ``compute node maintain`` campaign, kept in the cloud.

Where: the metadata of a host aggregate of its own,
``nodeops-maintain-<campaign>``, that holds no host.  Why there:

* admin-only (nova's default policy gives the aggregate API to admins
  only) and visible to every admin (``openstack aggregate show``), from any
  machine: a rerun anywhere resumes the campaign;
* it outlives each host's cycle: a service's disabled reason (255
  characters) is cleared when the host is enabled, so a finished host's
  record would go with it;
* one key per host (``host:<host>``), set with nova's ``set_metadata``
  action, which changes only the keys it is given: two runs recording two
  hosts do not overwrite each other;
* an aggregate with no host changes no scheduling (its metadata applies to
  its hosts only) and has no availability zone.

A value is ``step=TIME ...`` (``20261203T045200Z``); ``exec-start`` says
an ``--exec`` began and has not been recorded as finished (a kill or an
interruption: the step may have run in part), ``exec-interrupted`` that
the run saw it interrupted.  The aggregate is deleted when every host of
the campaign is done.  ``--state FILE`` is a cache of the same records.
"""

import hashlib
import json
import threading

from osc_nodeops import durable
from osc_nodeops import errors
from osc_nodeops import safefile
from osc_nodeops import timeutil
from osc_nodeops.ops.cloud import calls

PREFIX = 'nodeops-maintain-'
KEY_PREFIX = 'host:'
REASON_PREFIX = 'reason:'  # a host's own disabled reason, given back
EXEC_STARTED = 'exec-start'
EXEC_INTERRUPTED = 'exec-interrupted'


def default_name(hosts=(), aggregate=None, zone=None):
    """The campaign of a scope: the same command names the same one."""
    if aggregate:
        return 'aggregate-%s' % aggregate
    if zone:
        return 'zone-%s' % zone
    digest = hashlib.sha256(','.join(sorted(hosts)).encode()).hexdigest()
    return 'hosts-%s' % digest[:12]


def _stamp(now=None):
    return (now or timeutil.utcnow()).strftime('%Y%m%dT%H%M%SZ')


def parse_value(value):
    """``{step: TIME}`` from a metadata value (unknown words ignored)."""
    steps = {}
    for word in (value or '').split():
        step, _, at = word.partition('=')
        if step and at:
            steps[step] = at
    return steps


def format_value(steps):
    return ' '.join('%s=%s' % kv for kv in steps.items())[:255]


class Progress(object):
    """Each host's finished steps: the cloud's record, ``cache`` (a
    ``State``, the ``--state`` file) beside it."""

    def __init__(self, compute, name, cache=None):
        self.compute = compute
        self.name = PREFIX + name
        self.cache = cache if cache is not None and cache.path else None
        self.hosts = {}
        self._reasons = {}
        self._aggregate = None
        self._lock = threading.Lock()
        for agg in calls.call_with_retry(
                lambda: list(compute.aggregates())):
            if agg.name == self.name:
                self._aggregate = agg
                for key, value in (agg.metadata or {}).items():
                    if key.startswith(KEY_PREFIX):
                        self.hosts[key[len(KEY_PREFIX):]] = parse_value(
                            value)
                    elif key.startswith(REASON_PREFIX):
                        self._reasons[key[len(REASON_PREFIX):]] = (
                            value or '').strip()
        for host, steps in (self.cache.hosts if self.cache else {}).items():
            mine = self.hosts.setdefault(host, {})
            for step, at in steps.items():
                mine.setdefault(step, at)

    @property
    def where(self):
        return 'host aggregate %s' % self.name

    def done(self, host, step):
        return step in self.hosts.get(host, {})

    def mark(self, host, step, drop=()):
        with self._lock:   # a wave's hosts are cycled in threads
            steps = self.hosts.setdefault(host, {})
            for gone in drop:
                steps.pop(gone, None)
            steps[step] = _stamp()
            self._write(host)

    def forget(self, host, *steps):
        with self._lock:
            if any(s in self.hosts.get(host, {}) for s in steps):
                for step in steps:
                    self.hosts[host].pop(step, None)
                self._write(host)

    def reason(self, host):
        return self._reasons.get(host)

    def reasons(self):
        return dict(self._reasons)

    def keep_reason(self, host, reason):
        """``host`` was disabled by someone else (``reason``) when the
        campaign took it (--include-disabled): it gets it back."""
        self._reasons[host] = reason
        agg = self._ensure()
        calls.call_with_retry(lambda: self.compute.set_aggregate_metadata(
            agg, metadata={REASON_PREFIX + host: reason[:255] or ' '}))

    def _write(self, host):
        agg = self._ensure()
        value = format_value(self.hosts.get(host, {})) or None
        calls.call_with_retry(lambda: self.compute.set_aggregate_metadata(
            agg, metadata={KEY_PREFIX + host: value}))
        if self.cache:
            self.cache.hosts = self.hosts
            self.cache.save()

    def _ensure(self):
        if self._aggregate is None:
            self._aggregate = calls.call_with_retry(
                lambda: self.compute.create_aggregate(name=self.name))
        return self._aggregate

    def finish(self):
        """Every host done: the record goes (the next campaign of this
        scope starts afresh).  Returns a note."""
        if self._aggregate is None:
            return None
        calls.call_with_retry(lambda: self.compute.delete_aggregate(
            self._aggregate))
        self._aggregate = None
        return 'campaign finished: %s deleted' % self.where


class State(object):
    """The ``--state`` cache: ``{"format": FORMAT, "hosts": {HOST: {STEP:
    TIME}}}``, written durably per step.  Read through ``safefile`` (ours:
    owner, mode, no link) and only with our format marker: a file that is
    not ours is refused, never trusted nor replaced."""

    FORMAT = 'osc-nodeops/maintain-state/1'

    def __init__(self, path):
        self.path = path
        self.hosts = {}
        if not path:
            return
        try:
            text = safefile.read_text(path, label='--state %s' % path)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise errors.UsageError('--state %s: %s' % (
                path, exc.strerror or exc))
        try:
            data = json.loads(text)
            if data.get('format') != self.FORMAT:
                raise ValueError('no %r marker' % self.FORMAT)
            self.hosts = {str(h): {str(k): str(v) for k, v in
                                   dict(steps).items()}
                          for h, steps in (data.get('hosts') or {}).items()}
        except (ValueError, AttributeError, TypeError) as exc:
            raise errors.UsageError('--state %s: not a state file of '
                                    'this command (%s); it was left as it '
                                    'is' % (path, exc))

    def done(self, host, step):
        return step in self.hosts.get(host, {})

    def mark(self, host, step):
        self.hosts.setdefault(host, {})[step] = _stamp()
        self.save()

    def save(self):
        if self.path:
            durable.write_json(self.path, {'format': self.FORMAT,
                                           'hosts': self.hosts})
