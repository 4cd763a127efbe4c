"""``compute node maintain``: rolling maintenance of many hosts in waves.

For each wave of at most ``max_hosts`` hosts: drain them (``ops/drain``),
run the operator's ``--exec`` step on each (``privileged/operator_step``),
wait until its nova-compute is up with a heartbeat newer than the step,
run ``--check``, undrain (and with ``migrate_back`` bring its servers
home).  The first host that fails stops the run (``keep_going``: the others
go on) and stays disabled with a reason that says why.

Never more than ``max_hosts`` hosts of the scope (the aggregate, the zone,
or every compute host) are out of service at once: every disabled or down
host counts.  Hosts someone else disabled are left alone (named ones only
with ``include_disabled``, and they get their own reason back).  A run is
resumable: the hosts in the middle of a cycle hold a lease in the
service's disabled reason, and the campaign's progress is kept in the
cloud (``ops/campaign.py``); a rerun from any machine goes on with each
host's first unfinished step and never re-runs a finished or interrupted
``--exec`` unless its host is in ``rerun_exec``.
"""

import dataclasses
import re
import signal
import time
import typing

from openstack import exceptions as sdk_exc
from openstack import utils as sdk_utils

from osc_nodeops import errors
from osc_nodeops import timeutil
from osc_nodeops.ops import campaign
from osc_nodeops.ops import drain
from osc_nodeops.ops import engine
from osc_nodeops.ops import node_list
from osc_nodeops.privileged import operator_step

STEPS = ('drain', 'exec', 'wait', 'check', 'undrain')
State = campaign.State  # the --state cache file
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
    rerun_exec: tuple = ()  # hosts whose --exec runs again (--rerun-exec)
    campaign: str | None = None  # the progress record's name (--campaign)
    include_disabled: bool = False  # named hosts disabled by others too
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

    def __init__(self, step, message, output=None, status=None):
        super(_Failed, self).__init__(message)
        self.step = step
        self.output = output
        self.status = status  # a step's exit status (it ran to its end)


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
    reason (``maintain done=drain,exec: ...``, under a lease)."""
    if service.status != 'disabled':
        return set()
    if drain.parse_lease(service.disabled_reason) is None:
        return set()
    m = DONE_RE.match(service.disabled_reason or '')
    return set(m.group(1).split(',')) & set(STEPS) if m else set()


def maintain_owner():
    """The lease owner of this run: the same as its drains' and undrains'
    (``drain.lease_owner``), so that they see the lease as theirs and no
    lease is ever broken inside a run."""
    return drain.lease_owner()


def _like_sigint(signum, frame):
    """SIGTERM and SIGHUP (a CI cancel, a dropped SSH session) do what
    SIGINT does at that moment: the drain's graceful stop, or
    KeyboardInterrupt (a running step's process group is ended)."""
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        return handler(signal.SIGINT, frame)
    raise KeyboardInterrupt()


def _install_signals():
    old = {}
    try:
        for sig in (signal.SIGTERM, signal.SIGHUP):
            old[sig] = signal.signal(sig, _like_sigint)
        if signal.getsignal(signal.SIGINT) in (signal.SIG_IGN,
                                               signal.SIG_DFL):
            old[signal.SIGINT] = signal.signal(signal.SIGINT,
                                               signal.default_int_handler)
    except ValueError:  # not the main thread
        pass
    return old


def _restore_signals(old):
    for sig, handler in old.items():
        try:
            signal.signal(sig, handler)
        except ValueError:
            pass


@dataclasses.dataclass
class _Run(object):
    """One maintain run: what every wave and cycle needs."""
    conn: typing.Any
    req: Request
    state: campaign.Progress
    results: dict
    owner: str
    emit: typing.Any
    sleep: typing.Any
    leases_at_start: dict  # host -> (owner, at) another run held then
    kept: dict  # host -> its own disabled reason (--include-disabled)


# -------------------------------------------------------------- execution

def _validate(req):
    if req.max_hosts < 1:
        raise errors.UsageError('--max-hosts must be at least 1')
    if req.order not in ORDERS:
        raise errors.UsageError('--order must be one of %s' % ', '.join(
            ORDERS))
    if req.migrate_back and req.drain_options.keep_disabled:
        raise errors.UsageError('--migrate-back needs the host enabled')
    for name in req.exec_env:
        try:
            operator_step.check_env_name(name)
        except operator_step.StepError as exc:
            raise errors.UsageError(str(exc))
    if req.hosts:
        for host in req.rerun_exec:
            if host not in req.hosts:
                raise errors.UsageError('--rerun-exec %s: not a host of '
                                        'this run' % host)


def run(conn, req, events=None, sleep=time.sleep):
    """Maintain the hosts of ``req``; returns a ``Report``."""
    _validate(req)
    old = _install_signals()
    try:
        return _run(conn, req, events, sleep)
    finally:
        _restore_signals(old)


def _classify(run, services, hosts, todo):
    """Leases and hosts disabled by others, before anything changes.
    Returns the hosts left to do."""
    req, state, results = run.req, run.state, run.results
    left = []
    for h in todo:
        svc = services[h]
        # another run still at work: refuse (nothing changed)
        drain.check_lease(svc, run.owner, req.drain_options.break_lease)
        held = drain.parse_lease(svc.disabled_reason)
        if held and held[0] != run.owner:
            run.leases_at_start[h] = held
        for step in steps_in_reason(svc) - set(state.hosts.get(h, {})):
            state.hosts.setdefault(h, {})[step] = 'recorded in the reason'
            results[h].steps[step] = 'done'
        ours = held is not None or state.hosts.get(h) or \
            state.reason(h) is not None
        if svc.status != 'disabled' or ours:
            left.append(h)
            continue
        reason = svc.disabled_reason or ''
        if h in req.hosts and req.include_disabled:
            run.kept[h] = reason
            state.keep_reason(h, reason)
            left.append(h)
            continue
        results[h].result = 'failed' if h in req.hosts else 'skipped'
        results[h].message = (
            'disabled by someone else (reason: %r): left alone%s' % (
                reason, '; name it with --include-disabled to maintain it '
                '(it stays disabled with its reason)' if h in req.hosts
                else ''))
        run.emit('skip', results[h].message, host=h, step='plan')
    for h, reason in state.reasons().items():
        if h in left:
            run.kept.setdefault(h, reason)
    return left


def _run(conn, req, events, sleep):
    compute = conn.compute
    cache = State(req.state_file)  # a file not ours: exit 2, no cloud call
    services = _scope(compute, req)
    scope = [s.host for s in services]
    wanted = list(req.hosts) if req.hosts else scope
    for host in req.rerun_exec:
        if host not in wanted:
            raise errors.NotFound('--rerun-exec %s: not a host of this run'
                                  % host)
    counts = {r.host: r.instances for r in node_list.gather(
        compute, req.aggregate, req.zone)}
    hosts = order_hosts(wanted, counts, req.order)
    state = campaign.Progress(compute, req.campaign or campaign.default_name(
        req.hosts, req.aggregate, req.zone), cache)
    results = {h: HostResult(h, steps={s: 'done' for s in STEPS
                                       if state.done(h, s)}) for h in hosts}
    run = _Run(conn, req, state, results, maintain_owner(), _Emitter(events),
               sleep, {}, {})
    emit = run.emit
    report = Report([results[h] for h in hosts])
    todo = [h for h in hosts if not state.done(h, 'undrain')]
    for h in hosts:
        if h not in todo:
            results[h].result = 'done'
            results[h].message = 'finished by an earlier run (%s)' % (
                state.where)
    todo = _classify(run, {s.host: s for s in services}, hosts, todo)
    if any(results[h].result == 'failed' for h in hosts):
        report.ok = False
    emit('hosts-total', str(len(todo)), step='plan')
    emit('plan-count', str(sum(counts.get(h, 0) for h in todo) * (
        2 if req.migrate_back else 1)), step='plan')
    emit('plan', '%d host(s), %d to maintain, at most %d out of service '
         'at once; progress in %s' % (len(hosts), len(todo), req.max_hosts,
                                      state.where), step='plan')
    _waves(run, report, scope, todo)
    if all(results[h].result in ('done', 'skipped') for h in hosts):
        note = state.finish()
        if note:
            emit('done', note, step='plan')
    emit('summary', 'most hosts of the scope out of service at once: %d'
         % report.max_out_of_service, step='plan')
    return report


def _next_wave(run, scope, todo, live):
    """The next wave within the budget: every out-of-service host of the
    scope counts (disabled by anyone, down, forced down), a host of this
    run already out first.  Returns ``(wave, out)`` (``out``: the hosts
    out of service now, the wave's new ones not yet)."""
    out = [h for h in scope if h in live and out_of_service(live[h])]
    out_todo = [h for h in todo if h in out]
    room_new = run.req.max_hosts - len(out)
    room_old = run.req.max_hosts - len([h for h in out if h not in todo])
    wave = out_todo[:max(0, room_old)] + [
        h for h in todo if h not in out][:max(0, room_new)]
    return wave, out


def _waves(run, report, scope, todo):
    req, results, emit = run.req, run.results, run.emit
    wave_no = 0
    failed_hosts: list[str] = []
    while todo:
        live = {s.host: s for s in node_list.compute_services(
            run.conn.compute, req.aggregate, req.zone)}
        wave, out = _next_wave(run, scope, todo, live)
        if not wave:
            msg = ('%d host(s) of the scope are out of service already (%s): '
                   '--max-hosts %d leaves no room for %s' % (
                       len(out), ', '.join(out), req.max_hosts,
                       ', '.join(todo)))
            emit('refused', msg, step='plan')
            for h in todo:
                results[h].message = msg
            report.ok = False
            break
        todo = [h for h in todo if h not in wave]
        wave_no += 1
        report.max_out_of_service = max(report.max_out_of_service, len(
            set(out) | set(wave)))
        emit('wave', '%d: %s' % (wave_no, ' '.join(wave)), step='wave')
        for h in wave:
            results[h].wave = wave_no
        ok = _wave(run, wave)
        if not ok:
            failed_hosts.extend(h for h in wave
                                if results[h].result == 'failed')
            report.ok = False
            if any(results[h].result == 'interrupted' for h in wave):
                report.interrupted = True
                break
            if not req.keep_going:
                for h in todo:
                    results[h].message = 'not started: the run stopped at ' \
                        '%s' % ', '.join(failed_hosts)
                break


def _taken(run, host, svc):
    """The lease another run took on ``host`` since this run started (not
    the one ``check_lease`` let it take over), or None."""
    held = drain.parse_lease(svc.disabled_reason)
    if svc.status != 'disabled' or held is None or held[0] == run.owner:
        return None
    if run.leases_at_start.get(host) == held:
        return None
    return held


def _refuse_taken(run, host, held):
    r = run.results[host]
    r.result = 'failed'
    r.steps.setdefault('drain', 'refused')
    r.message = ('refused: %s leased it after this run started (%s, since '
                 '%s); left to it' % (host, held[0], held[1]))
    run.emit('failed', r.message, host=host, step='drain')


def _wave(run, wave):
    conn, req, state, results = run.conn, run.req, run.state, run.results
    compute = conn.compute
    emit = run.emit
    to_drain = [h for h in wave if not state.done(h, 'drain')]
    services = {h: drain.compute_service(compute, h) for h in to_drain}
    for h in list(to_drain):
        held = _taken(run, h, services[h])
        if held:
            _refuse_taken(run, h, held)
            to_drain.remove(h)
            del services[h]
    if to_drain:
        # A lease that run() allowed to be taken over (its process gone,
        # or --break-lease) is broken here, never one taken since.
        opts = dataclasses.replace(
            req.drain_options, reason=None, break_lease=any(
                h in run.leases_at_start for h in to_drain))
        if not opts.allow_skipped and _refuse_skips(
                conn, to_drain, services, opts, results, emit):
            return False
        for h in to_drain:
            emit('start', 'draining', host=h, step='drain')
        # With ``conn`` the drain's pre-flight checks this wave's servers
        # against the hosts still in service (not the wave's, not those
        # disabled already) and refuses before anything changes.
        try:
            reports = drain.drain_hosts(
                compute, to_drain, services, opts, events=_forward(emit),
                reason_default='maintenance: osc-nodeops compute node '
                               'maintain at %s' % timeutil.api_time(
                                   timeutil.utcnow()),
                conn=conn)
        except errors.Refused as exc:  # a lease taken meanwhile
            for h in to_drain:
                results[h].result = 'failed'
                results[h].steps['drain'] = 'refused'
                results[h].message = 'drain refused: %s' % exc
            return False
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
                _fail(run, results[h], 'drain', why)
                if r is not None and r.interrupted:
                    results[h].result = 'interrupted'
            else:
                state.mark(h, 'drain')
                results[h].steps['drain'] = 'done'
                _hold(run, h, 'maintenance in progress')
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
            _hold(run, h, 'the run stopped at another host of the wave '
                  'before this host\'s step')
            continue
        try:
            _cycle(run, h, results[h])
        except _Failed as exc:
            _fail(run, results[h], exc.step, str(exc), output=exc.output)
            ok = False
        except KeyboardInterrupt:
            results[h].result = 'interrupted'
            results[h].message = 'interrupted; a rerun goes on from here'
            return False
        except Exception as exc:
            # Any other error is this host's row (the table is kept), not
            # a traceback that loses every row.
            _fail(run, results[h], results[h].current or 'exec',
                  errors.one_line(exc))
            ok = False
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


def _hold(run, host, why):
    """Keep the host disabled under our lease for the rest of the cycle;
    the reason names the steps done (``steps_in_reason``).  A lease
    another run took since this run started is left alone (``_Failed``)."""
    compute = run.conn.compute
    svc = drain.compute_service(compute, host)
    held = _taken(run, host, svc)
    if held:
        raise _Failed(run.results[host].current or 'drain',
                      'leased by %s since %s after this run started; left '
                      'to it' % held)
    done = [s for s in STEPS if run.state.done(host, s)]
    reason = '%s%s (osc-nodeops compute node maintain)' % (
        'maintain done=%s: ' % ','.join(done) if done else 'maintenance: ',
        why)
    drain.set_disabled(engine.Context(compute, host), svc,
                       drain.with_lease(reason, run.owner))


def _fail(run, result, step, why, output=None):
    """The row (with the step's ``output``) and the reason (without it:
    nova keeps it for every admin to read, after the run)."""
    result.result = 'failed'
    result.steps[step] = 'failed'
    result.message = '%s failed: %s%s' % (step, why, ': ' + output
                                          if output else '')
    run.emit('failed', result.message, host=result.host, step=step)
    if step == 'undrain':
        return  # the host is healthy and enabled; the rows say what is left
    try:
        _hold(run, result.host, 'left disabled: %s failed at %s: %s' % (
            step, timeutil.api_time(timeutil.utcnow()), why))
    except Exception as exc:
        run.emit('warning', 'could not set the reason: %s' % (
            errors.one_line(exc),), host=result.host, step=step)


def _exec(run, host, result):
    """The operator's --exec, recorded as started before it runs: a kill
    or an interruption leaves ``exec-start`` without its end, and no
    rerun starts it again without ``--rerun-exec HOST``."""
    req, state, emit = run.req, run.state, run.emit
    rerun = host in req.rerun_exec
    if state.done(host, campaign.EXEC_STARTED) and not rerun:
        raise _Failed('exec', 'started by an earlier run at %s and never '
                      'recorded as finished (%s): it may have run in part; '
                      'rerun with --rerun-exec %s to run it again' % (
                          state.hosts[host][campaign.EXEC_STARTED],
                          'interrupted' if state.done(
                              host, campaign.EXEC_INTERRUPTED)
                          else 'killed', host))
    if state.done(host, 'exec') and not rerun:
        result.steps['exec'] = 'done (earlier run)'
        emit('skip', 'finished by an earlier run (%s)' % state.where,
             host=host, step='exec')
        return False
    result.current = 'exec'
    state.mark(host, campaign.EXEC_STARTED,
               drop=('exec', campaign.EXEC_INTERRUPTED))
    emit('start', req.exec_cmd, host=host, step='exec')
    try:
        _step(req, host, 'exec', req.exec_cmd, req.exec_timeout, emit)
    except KeyboardInterrupt:
        try:
            state.mark(host, campaign.EXEC_INTERRUPTED)
        except Exception as exc:
            emit('warning', 'could not record "exec interrupted": %s'
                 % errors.one_line(exc), host=host, step='exec')
        emit('interrupt', 'exec interrupted; its process group ended',
             host=host, step='exec')
        raise
    except _Failed as exc:
        if exc.status is not None:  # it ended: a rerun may run it again
            state.forget(host, campaign.EXEC_STARTED)
        raise
    state.mark(host, 'exec', drop=(campaign.EXEC_STARTED,))
    result.steps['exec'] = 'done'
    _hold(run, host, 'step done, waiting for nova-compute')
    emit('done', 'exit 0', host=host, step='exec')
    return True


def _cycle(run, host, result):
    req, state, emit = run.req, run.state, run.emit
    compute = run.conn.compute
    step_ended = timeutil.utcnow()
    if req.exec_cmd and _exec(run, host, result):
        step_ended = timeutil.utcnow()
    if not state.done(host, 'wait'):
        result.current = 'wait'
        emit('start', 'waiting for nova-compute up with a fresh heartbeat',
             host=host, step='wait')
        wait_up(compute, host, step_ended, req, run.sleep)
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
    svc = drain.compute_service(compute, host)
    held = _taken(run, host, svc)
    if held:
        raise _Failed('undrain', 'leased by %s since %s after this run '
                      'started; left to it' % held)
    kept = run.kept.get(host)
    opts = dataclasses.replace(req.drain_options,
                               migrate_back=req.migrate_back and kept is None,
                               keep_disabled=kept is not None,
                               break_lease=False)
    report = drain.undrain_host(compute, host, svc, opts,
                                events=_forward(emit))
    moved = sum(1 for i in report.items if i.action and i.ok)
    result.moved_back = moved if opts.migrate_back else None
    if not report.ok:
        raise _Failed('undrain', 'not every server went home (%d did)'
                      % moved)
    if kept is not None:
        # Its own earlier state: disabled, with its reason (no lease).
        drain.set_disabled(engine.Context(compute, host),
                           drain.compute_service(compute, host), kept)
    state.mark(host, 'undrain')
    result.steps['undrain'] = 'done'
    result.result = 'done'
    result.message = 'cycled' if kept is None else (
        'cycled; left disabled as it was (reason %r), its servers stay '
        'where they went (--include-disabled)' % kept)
    emit('host-done', 'maintained', host=host, step='undrain')


def _step(req, host, step, cmd, timeout, emit):
    """Run the operator's ``cmd`` for ``host``; ``_Failed`` unless it
    exits 0.  Its output is an event (stderr, ``--events``)."""
    started = timeutil.utcnow()
    try:
        rc, out = operator_step.run(cmd, host, timeout,
                                    forward=req.exec_env)
    except (operator_step.StepError, OSError) as exc:
        raise _Failed(step, errors.one_line(exc), status='not started')
    if out:
        emit('output', out, host=host, step=step)
    if rc is None:
        raise _Failed(step, 'did not finish within %ds (started %s)' % (
            timeout, timeutil.api_time(started)), output=out)
    if rc != 0:
        raise _Failed(step, 'exit %d' % rc, output=out, status=rc)


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
