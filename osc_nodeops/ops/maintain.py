"""``compute node maintain``: rolling maintenance of many hosts in waves.

For each wave of at most ``max_hosts`` hosts: drain them (``ops/drain``),
run the operator's ``--exec`` step on each (``privileged/operator_step``),
wait until its nova-compute is up with a heartbeat newer than the step,
run ``--check``, undrain (and with ``migrate_back`` bring its servers
home).  The first host that fails stops the run (``keep_going``: the others
go on) and stays disabled with a reason that says why.

Never more than ``max_hosts`` hosts of the scope (the aggregate, the zone,
or every compute host) are out of service at once: hosts disabled by
someone else count against it.  A run is resumable: the hosts in the middle
of a cycle hold a lease in the service's disabled reason, and ``state``
(a JSON file) records each host's finished steps; a rerun goes on with the
first unfinished step and never re-runs a finished ``--exec`` unless
``rerun_exec``.
"""

import dataclasses
import json
import re
import time

from openstack import exceptions as sdk_exc
from openstack import utils as sdk_utils

from osc_nodeops import durable
from osc_nodeops import errors
from osc_nodeops import safefile
from osc_nodeops import timeutil
from osc_nodeops.ops import drain
from osc_nodeops.ops import engine
from osc_nodeops.ops import node_list

STEPS = ('drain', 'exec', 'wait', 'check', 'undrain')
DONE_RE = re.compile(r'^maintain done=([a-z,]+): ')
ORDERS = ('fewest', 'given', 'name')
COLUMNS = ('Host', 'Wave', 'Drained', 'Exec', 'Up', 'Check', 'Undrained',
           'Moved Back', 'Result', 'Message')


@dataclasses.dataclass
class Request(object):
    hosts: tuple = ()
    aggregate: str | None = None
    zone: str | None = None
    max_hosts: int = 1
    exec_cmd: str | None = None
    exec_timeout: float = 3600.0
    check_cmd: str | None = None
    check_timeout: float = 600.0
    up_timeout: float = 900.0
    migrate_back: bool = False
    keep_going: bool = False
    order: str = 'fewest'
    state_file: str | None = None
    rerun_exec: bool = False
    exec_env: tuple = ()  # names of variables the steps get (--exec-env)
    drain_options: drain.Options | None = None
    poll_interval: float = 3.0


@dataclasses.dataclass
class HostResult(object):
    host: str
    wave: int | None = None
    steps: dict = dataclasses.field(default_factory=dict)
    result: str = 'not-started'
    message: str = ''
    moved_back: int | None = None
    current: str | None = None  # the step under way (errors charged to it)

    def row(self):
        s = self.steps
        return (self.host, self.wave, s.get('drain'), s.get('exec'),
                s.get('wait'), s.get('check'), s.get('undrain'),
                self.moved_back, self.result, self.message)


@dataclasses.dataclass
class Report(object):
    hosts: list
    ok: bool = True
    interrupted: bool = False
    max_out_of_service: int = 0


class _Failed(Exception):
    """One host's cycle failed at a step (the message says why; a step's
    ``output`` goes to the row and the events, never the service reason)."""

    def __init__(self, step, message, output=None):
        super(_Failed, self).__init__(message)
        self.step = step
        self.output = output


# ------------------------------------------------------------- state file

class State(object):
    """``{"format": FORMAT, "hosts": {HOST: {STEP: TIME}}}``, written
    durably per step.  Read through ``safefile`` (ours: owner, mode, no
    link) and only with our format marker: a file that is not ours is
    refused, never trusted nor replaced."""

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
            self.hosts = {str(h): dict(v) for h, v in
                          (data.get('hosts') or {}).items()}
        except (ValueError, AttributeError, TypeError) as exc:
            raise errors.UsageError('--state %s: not a state file of '
                                    'this command (%s); it was left as it '
                                    'is' % (path, exc))

    def done(self, host, step):
        return step in self.hosts.get(host, {})

    def mark(self, host, step):
        self.hosts.setdefault(host, {})[step] = timeutil.api_time(
            timeutil.utcnow())
        self.save()

    def forget(self, host, step):
        self.hosts.get(host, {}).pop(step, None)

    def save(self):
        if self.path:
            durable.write_json(self.path, {'format': self.FORMAT,
                                          'hosts': self.hosts})


# ----------------------------------------------------------------- events

class _Emitter(object):

    def __init__(self, events):
        self.events = events

    def __call__(self, kind, message, host=None, step=None):
        if self.events:
            try:
                self.events(engine.Event(kind, message, host=host,
                                         step=step))
            except Exception:
                pass


# --------------------------------------------------------------- planning

def _scope(compute, req):
    if req.hosts and (req.aggregate or req.zone):
        raise errors.UsageError('name hosts or give --aggregate / '
                                '--availability-zone, not both')
    services = node_list.compute_services(compute, req.aggregate, req.zone)
    if req.hosts:
        if len(set(req.hosts)) != len(req.hosts):
            raise errors.UsageError('a host is named twice')
        known = {s.host for s in services}
        for host in req.hosts:
            if host not in known:
                raise errors.NotFound('no nova-compute service on host %r'
                                      % host)
    return services


def order_hosts(hosts, counts, order):
    if order == 'given':
        return list(hosts)
    if order == 'name':
        return sorted(hosts)
    return sorted(hosts, key=lambda h: (counts.get(h, 0), h))


def out_of_service(service):
    """Disabled, down or forced down: no new servers go there."""
    return (service.status == 'disabled' or service.state == 'down'
            or bool(service.is_forced_down))


def steps_in_reason(service):
    """Steps a maintain run recorded as done in the service's disabled
    reason (``maintain done=drain,exec: ...``): a rerun from another
    machine, without the ``--state`` file, still finds them."""
    if service.status != 'disabled':
        return set()
    lease = drain.parse_lease(service.disabled_reason)
    if lease is None or not lease[0].startswith('maintain:'):
        return set()
    m = DONE_RE.match(service.disabled_reason or '')
    return set(m.group(1).split(',')) & set(STEPS) if m else set()


def maintain_owner():
    return 'maintain:' + drain.lease_owner()


# -------------------------------------------------------------- execution

def run(conn, req, events=None, sleep=time.sleep):
    """Maintain the hosts of ``req``; returns a ``Report``."""
    compute = conn.compute
    if req.max_hosts < 1:
        raise errors.UsageError('--max-hosts must be at least 1')
    if req.order not in ORDERS:
        raise errors.UsageError('--order must be one of %s' % ', '.join(
            ORDERS))
    if req.migrate_back and req.drain_options.keep_disabled:
        raise errors.UsageError('--migrate-back needs the host enabled')
    from osc_nodeops.privileged import operator_step
    for name in req.exec_env:
        try:
            operator_step.check_env_name(name)
        except operator_step.StepError as exc:
            raise errors.UsageError(str(exc))
    state = State(req.state_file)
    services = _scope(compute, req)
    scope = [s.host for s in services]
    wanted = list(req.hosts) if req.hosts else scope
    counts = {r.host: r.instances for r in node_list.gather(
        compute, req.aggregate, req.zone)}
    hosts = order_hosts(wanted, counts, req.order)
    emit = _Emitter(events)
    owner = maintain_owner()
    results = {h: HostResult(h, steps={s: 'done' for s in STEPS
                                       if state.done(h, s)}) for h in hosts}
    report = Report([results[h] for h in hosts])
    todo = [h for h in hosts if not state.done(h, 'undrain')]
    for h in hosts:
        if h not in todo:
            results[h].result = 'done'
            results[h].message = 'finished by an earlier run (--state)'
    for h in todo:  # another maintain or drain still at work: refuse
        svc = next(s for s in services if s.host == h)
        drain.check_lease(svc, owner, req.drain_options.break_lease)
        for step in steps_in_reason(svc) - set(state.hosts.get(h, {})):
            state.hosts.setdefault(h, {})[step] = 'recorded in the reason'
            results[h].steps[step] = 'done'
    emit('hosts-total', str(len(todo)), step='plan')
    emit('plan-count', str(sum(counts.get(h, 0) for h in todo) * (
        2 if req.migrate_back else 1)), step='plan')
    emit('plan', '%d host(s), %d to maintain, at most %d out of service '
         'at once' % (len(hosts), len(todo), req.max_hosts), step='plan')
    wave_no = 0
    failed_hosts: list[str] = []
    while todo:
        live = {s.host: s for s in node_list.compute_services(
            compute, req.aggregate, req.zone)}
        others = [h for h in scope if h in live and h not in todo
                  and out_of_service(live[h])]
        room = req.max_hosts - len(others)
        if room < 1:
            msg = ('%d host(s) of the scope are out of service already (%s): '
                   '--max-hosts %d leaves no room for %s' % (
                       len(others), ', '.join(others), req.max_hosts,
                       ', '.join(todo)))
            emit('refused', msg, step='plan')
            for h in todo:
                results[h].message = msg
            report.ok = False
            break
        wave = todo[:room]
        todo = todo[room:]
        wave_no += 1
        report.max_out_of_service = max(report.max_out_of_service,
                                        len(others) + len(wave))
        emit('wave', '%d: %s' % (wave_no, ' '.join(wave)), step='wave')
        for h in wave:
            results[h].wave = wave_no
        ok = _wave(conn, req, state, wave, results, owner, emit, sleep)
        if not ok:
            failed_hosts.extend(h for h in wave
                                if results[h].result == 'failed')
            report.ok = False
            if results and any(results[h].result == 'interrupted'
                               for h in wave):
                report.interrupted = True
                break
            if not req.keep_going:
                for h in todo:
                    results[h].message = 'not started: the run stopped at ' \
                        '%s' % ', '.join(failed_hosts)
                break
    return report


def _wave(conn, req, state, wave, results, owner, emit, sleep):
    compute = conn.compute
    to_drain = [h for h in wave if not state.done(h, 'drain')]
    if to_drain:
        # Leases were checked (and, if asked, broken) by run().
        opts = dataclasses.replace(req.drain_options, reason=None,
                                   break_lease=True)
        services = {h: drain.compute_service(compute, h) for h in to_drain}
        if not opts.allow_skipped and _refuse_skips(
                conn, to_drain, services, opts, results, emit):
            return False
        for h in to_drain:
            emit('start', 'draining', host=h, step='drain')
        # With ``conn`` the drain's pre-flight checks this wave's servers
        # against the hosts still in service (not the wave's, not those
        # disabled already) and refuses before anything changes.
        reports = drain.drain_hosts(
            compute, to_drain, services, opts, events=_forward(emit),
            reason_default='maintenance: osc-nodeops compute node maintain '
                           'at %s' % timeutil.api_time(timeutil.utcnow()),
            conn=conn)
        if any(r.refused for r in reports):
            note = next(r.service_note for r in reports if r.refused)
            for h in to_drain:  # untouched: enabled, no lease, no move
                results[h].result = 'failed'
                results[h].steps['drain'] = 'refused'
                results[h].message = 'drain %s' % note
                emit('failed', results[h].message, host=h, step='drain')
            return False
        done = {r.host: r for r in reports}
        for h in to_drain:
            r = done.get(h)
            if r is None or not r.ok:
                why = ('interrupted' if r is None or r.interrupted else
                       '%d server(s) left on the host' % len(r.left or ())
                       if r.left else 'a move failed')
                _fail(conn, results[h], 'drain', why, owner, emit, state)
                if r is not None and r.interrupted:
                    results[h].result = 'interrupted'
            else:
                state.mark(h, 'drain')
                results[h].steps['drain'] = 'done'
                _hold(compute, h, owner, 'maintenance in progress', state)
    ok = True
    for h in wave:
        if results[h].result in ('failed', 'interrupted'):
            ok = False
            continue
        if not ok and not req.keep_going:
            # Drained with the wave, but the run stops: left disabled
            # (a rerun goes on with it).
            results[h].result = 'stopped'
            results[h].message = ('drained; the run stopped before its '
                                  'step')
            _hold(compute, h, owner, 'the run stopped at another host of '
                  'the wave before this host\'s step', state)
            continue
        try:
            _cycle(conn, req, state, h, results[h], owner, emit, sleep)
        except _Failed as exc:
            _fail(conn, results[h], exc.step, str(exc), owner, emit, state,
                  output=exc.output)
            ok = False
        except Exception as exc:
            # Any other error is this host's row (the table is kept), not
            # a traceback that loses every row.
            _fail(conn, results[h], results[h].current or 'exec',
                  errors.one_line(exc), owner, emit, state)
            ok = False
        except KeyboardInterrupt:
            results[h].result = 'interrupted'
            results[h].message = 'interrupted; a rerun goes on from here'
            return False
    return ok


def _refuse_skips(conn, hosts, services, opts, results, emit):
    """A wave whose drain would leave a server behind (ERROR, SUSPENDED
    without --move-suspended, locked, busy...) cannot be finished: refuse
    it before anything changes (a dry-run plan of the wave, with the
    pre-flight's blockers).  True when refused."""
    plan = drain.drain_hosts(conn.compute, hosts, dict(services),
                             dataclasses.replace(opts, dry_run=True),
                             conn=conn)
    stays = {r.host: [i for i in r.items if i.action is None]
             for r in plan}
    if not any(stays.values()):
        return False
    for h in hosts:
        items = stays.get(h) or []
        results[h].result = 'failed'
        results[h].steps['drain'] = 'refused'
        results[h].message = (
            'refused, nothing changed: %s would stay on the host (%s); '
            '--allow-skipped drains the rest and runs the step with it '
            'there' % (items[0].label, items[0].reason) if items else
            'refused, nothing changed: another host of the wave holds a '
            'server the drain would leave behind')
        if len(items) > 1:
            results[h].message += ' (and %d more server(s))' % (
                len(items) - 1)
        emit('failed', results[h].message, host=h, step='drain')
    return True


def _forward(emit):
    def events(event):
        emit.events(event) if emit.events else None
    return events


def _hold(compute, host, owner, why, state=None):
    """Keep the host disabled under our lease for the rest of the cycle;
    the reason names the steps done (``steps_in_reason``)."""
    svc = drain.compute_service(compute, host)
    done = [s for s in STEPS if state is not None and state.done(host, s)]
    reason = '%s%s (osc-nodeops compute node maintain)' % (
        'maintain done=%s: ' % ','.join(done) if done else 'maintenance: ',
        why)
    drain.set_disabled(engine.Context(compute, host), svc,
                       drain.with_lease(reason, owner))


def _fail(conn, result, step, why, owner, emit, state=None, output=None):
    """The row (with the step's ``output``) and the reason (without it:
    nova keeps it for every admin to read, after the run)."""
    result.result = 'failed'
    result.steps[step] = 'failed'
    result.message = '%s failed: %s%s' % (step, why, ': ' + output
                                          if output else '')
    emit('failed', result.message, host=result.host, step=step)
    if step == 'undrain':
        return  # the host is healthy and enabled; the rows say what is left
    try:
        _hold(conn.compute, result.host, owner, 'left disabled: %s '
              'failed at %s: %s' % (step, timeutil.api_time(
                  timeutil.utcnow()), why), state)
    except Exception as exc:
        emit('warning', 'could not set the reason: %s' % errors.one_line(
            exc), host=result.host, step=step)


def _cycle(conn, req, state, host, result, owner, emit, sleep):
    compute = conn.compute
    step_ended = timeutil.utcnow()
    if req.exec_cmd and (req.rerun_exec or not state.done(host, 'exec')):
        result.current = 'exec'
        emit('start', req.exec_cmd, host=host, step='exec')
        _step(req, host, 'exec', req.exec_cmd, req.exec_timeout, emit)
        step_ended = timeutil.utcnow()
        state.mark(host, 'exec')
        result.steps['exec'] = 'done'
        _hold(compute, host, owner, 'step done, waiting for nova-compute',
              state)
        emit('done', 'exit 0', host=host, step='exec')
    elif req.exec_cmd:
        result.steps['exec'] = 'done (earlier run)'
        emit('skip', 'finished by an earlier run (--state)', host=host,
             step='exec')
    if not state.done(host, 'wait'):
        result.current = 'wait'
        emit('start', 'waiting for nova-compute up with a fresh heartbeat',
             host=host, step='wait')
        wait_up(compute, host, step_ended, req, sleep)
        state.mark(host, 'wait')
        result.steps['wait'] = 'done'
        emit('done', 'nova-compute up', host=host, step='wait')
    if req.check_cmd and not state.done(host, 'check'):
        result.current = 'check'
        emit('start', req.check_cmd, host=host, step='check')
        _step(req, host, 'check', req.check_cmd, req.check_timeout, emit)
        state.mark(host, 'check')
        result.steps['check'] = 'done'
    result.current = 'undrain'
    emit('start', 'undraining', host=host, step='undrain')
    opts = dataclasses.replace(req.drain_options,
                               migrate_back=req.migrate_back,
                               keep_disabled=False, break_lease=True)
    svc = drain.compute_service(compute, host)
    held = drain.parse_lease(svc.disabled_reason)
    if held and held[0] != owner and not held[0].startswith('maintain:') \
            and not req.drain_options.break_lease:
        raise _Failed('undrain', 'held by %s since %s' % held)
    report = drain.undrain_host(compute, host, svc, opts,
                                events=_forward(emit))
    moved = sum(1 for i in report.items if i.action and i.ok)
    result.moved_back = moved if req.migrate_back else None
    if not report.ok:
        raise _Failed('undrain', 'not every server went home (%d did)'
                      % moved)
    state.mark(host, 'undrain')
    result.steps['undrain'] = 'done'
    result.result = 'done'
    result.message = 'cycled'
    emit('host-done', 'maintained', host=host, step='undrain')


def _step(req, host, step, cmd, timeout, emit):
    """Run the operator's ``cmd`` for ``host``; ``_Failed`` unless it
    exits 0.  Its output is an event (stderr, ``--events``)."""
    from osc_nodeops.privileged import operator_step
    started = timeutil.utcnow()
    try:
        rc, out = operator_step.run(cmd, host, timeout,
                                    forward=req.exec_env)
    except (operator_step.StepError, OSError) as exc:
        raise _Failed(step, errors.one_line(exc))
    if out:
        emit('output', out, host=host, step=step)
    if rc is None:
        raise _Failed(step, 'did not finish within %ds (started %s)' % (
            timeout, timeutil.api_time(started)), output=out)
    if rc != 0:
        raise _Failed(step, 'exit %d' % rc, output=out)


def service_up(svc, since):
    """nova-compute up, not forced down, with a heartbeat newer than
    ``since`` (what ``compute node show`` reports as state and age)."""
    beat = timeutil.parse_time(svc.updated_at)
    return (svc.state == 'up' and not svc.is_forced_down and beat is not None
            and beat > since)


def wait_up(compute, host, since, req, sleep=time.sleep):
    try:
        for _ in sdk_utils.iterate_timeout(
                req.up_timeout, 'nova-compute of %s not up' % host,
                wait=req.poll_interval):
            try:
                svc = drain.compute_service(compute, host)
            except errors.NotFound:
                continue  # not listed while it restarts: look again
            except Exception as exc:
                if not engine.is_transient(exc):
                    raise _Failed('wait', errors.one_line(exc))
                continue  # the API's own trouble, retried already
            if service_up(svc, since):
                return svc
    except sdk_exc.ResourceTimeout:
        raise _Failed('wait', 'nova-compute not up with a heartbeat newer '
                      'than the step within %ds' % req.up_timeout)
