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

The modules: this one plans the run and its waves and drains each wave;
``host_cycle`` takes one drained host through ``--exec``, the wait for
nova-compute, ``--check`` and the undrain; ``dry_run`` words a host's
row of ``--dry-run``; ``common`` holds the request,
the rows and what both share.  The submodules never import this one.
"""

import dataclasses
import signal

from osc_nodeops import errors
from osc_nodeops import timeutil
from osc_nodeops.ops import campaign
from osc_nodeops.ops import drain
from osc_nodeops.ops import node_list
from osc_nodeops.ops import runtime as runtime_mod
from osc_nodeops.ops.cloud import nova
from osc_nodeops.ops.engine import wave as wave_mod
from osc_nodeops.ops.maintain import dry_run
from osc_nodeops.ops.maintain.common import COLUMNS  # noqa
from osc_nodeops.ops.maintain.common import DONE_RE
from osc_nodeops.ops.maintain.common import Emitter
from osc_nodeops.ops.maintain.common import Failed
from osc_nodeops.ops.maintain.common import HostResult
from osc_nodeops.ops.maintain.common import ORDERS
from osc_nodeops.ops.maintain.common import Report
from osc_nodeops.ops.maintain.common import Request  # noqa
from osc_nodeops.ops.maintain.common import Run
from osc_nodeops.ops.maintain.common import State
from osc_nodeops.ops.maintain.common import STEPS
from osc_nodeops.ops.maintain.host_cycle import cycle_host
from osc_nodeops.ops.maintain.host_cycle import fail_host
from osc_nodeops.ops.maintain.host_cycle import forward_events
from osc_nodeops.ops.maintain.host_cycle import hold_host
from osc_nodeops.ops.maintain.host_cycle import service_up  # noqa
from osc_nodeops.ops.maintain.host_cycle import taken_lease
from osc_nodeops.ops.maintain.host_cycle import wait_up  # noqa
from osc_nodeops.privileged import operator_step


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



# -------------------------------------------------------------- execution

def check_request(req):
    """Usage errors of the request alone (before any cloud call)."""
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


def run(conn, req, events=None, runtime=None):
    """Maintain the hosts of ``req``; returns a ``Report``.  ``runtime``:
    the ``runtime.Runtime`` of its waits and drains (the real one)."""
    check_request(req)
    old = _install_signals()
    try:
        return _run(conn, req, events, runtime or runtime_mod.Runtime())
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
            if not req.dry_run:
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


def _run(conn, req, events, runtime):
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
    run = Run(conn, req, state, results, maintain_owner(), Emitter(events),
               runtime, {}, {})
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
    if req.dry_run:
        plan_waves(run, report, scope, todo)
        return report
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


def _no_room(run, report, out, todo):
    msg = ('%d host(s) of the scope are out of service already (%s): '
           '--max-hosts %d leaves no room for %s' % (
               len(out), ', '.join(out), run.req.max_hosts,
               ', '.join(todo)))
    run.emit('refused', msg, step='plan')
    for h in todo:
        run.results[h].message = msg
    report.ok = False


def _each_wave(run, report, scope, todo, live=None, note=''):
    """Yield ``(wave, hosts left after it)`` while the budget has room;
    the services are listed again before each wave unless ``live`` (the
    dry run's one listing) is given."""
    req = run.req
    wave_no = 0
    while todo:
        now = live if live is not None else {
            s.host: s for s in node_list.compute_services(
                run.conn.compute, req.aggregate, req.zone)}
        wave, out = _next_wave(run, scope, todo, now)
        if not wave:
            _no_room(run, report, out, todo)
            return
        todo = [h for h in todo if h not in wave]
        wave_no += 1
        report.max_out_of_service = max(report.max_out_of_service, len(
            set(out) | set(wave)))
        run.emit('wave', '%d: %s%s' % (wave_no, ' '.join(wave), note),
                 step='wave')
        for h in wave:
            run.results[h].wave = wave_no
        yield wave, todo


def _waves(run, report, scope, todo):
    req, results = run.req, run.results
    failed_hosts: list[str] = []
    for wave, todo in _each_wave(run, report, scope, todo):
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


def plan_waves(run, report, scope, todo):
    """``--dry-run``: the waves the budget makes of the hosts out of
    service now (each wave's hosts back in service before the next), each
    host's drain plan with the pre-flight's fit (``drain_hosts`` in its
    dry run) and the steps that would run.  Nothing is changed: no lease,
    no disabled service, no progress record, no step."""
    req, results = run.req, run.results
    compute = run.conn.compute
    live = {s.host: s for s in node_list.compute_services(
        compute, req.aggregate, req.zone)}
    opts = dataclasses.replace(req.drain_options, dry_run=True, reason=None)
    for wave, _ in _each_wave(run, report, scope, todo, live, ' (dry run)'):
        plans = {r.host: r for r in drain.drain_hosts(
            compute, wave, {h: live[h] for h in wave}, opts, conn=run.conn)}
        for h in wave:
            if not dry_run.host_plan(req, results[h], plans.get(h)):
                report.ok = False


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
        held = taken_lease(run, h, services[h])
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
        for h in to_drain:
            emit('start', 'draining', host=h, step='drain')
        # With ``conn`` the drain's pre-flight checks this wave's servers
        # against the hosts still in service (not the wave's, not those
        # disabled already) and refuses before anything changes.
        try:
            reports = drain.drain_hosts(
                compute, to_drain, services, opts, at_once=True,
                events=forward_events(emit),
                reason_default='maintenance: osc-nodeops compute node '
                               'maintain at %s' % timeutil.api_time(
                                   timeutil.utcnow()),
                runtime=run.runtime, conn=conn,
                refuse_skips=not opts.allow_skipped)
        except errors.Refused as exc:  # a lease taken meanwhile
            for h in to_drain:
                results[h].result = 'failed'
                results[h].steps['drain'] = 'refused'
                results[h].message = 'drain refused: %s' % exc
            return False
        if any(r.refused for r in reports):
            _refused(run, to_drain, reports, skips=not opts.allow_skipped)
            return False
        done = {r.host: r for r in reports}
        for h in to_drain:
            r = done.get(h)
            if r is None or not r.ok:
                why = ('interrupted' if r is None or r.interrupted else
                       '%d server(s) left on the host' % len(r.left or ())
                       if r.left else 'a move failed')
                fail_host(run, results[h], 'drain', why)
                if r is not None and r.interrupted:
                    results[h].result = 'interrupted'
            else:
                state.mark(h, 'drain')
                results[h].steps['drain'] = 'done'
                hold_host(run, h, 'maintenance in progress')
    ok = all(results[h].result not in ('failed', 'interrupted')
             for h in wave)
    stop = any(results[h].result == 'interrupted' for h in wave)
    cycling = []
    for h in wave:
        if results[h].result in ('failed', 'interrupted'):
            continue
        if stop:
            # Drained with the wave, but a Ctrl-C stopped the run: left
            # disabled (a rerun goes on with it).
            results[h].result = 'stopped'
            results[h].message = ('drained; the run stopped before its '
                                  'step')
            hold_host(run, h, 'the run was interrupted before this '
                      'host\'s step')
            continue
        cycling.append(h)
    # The wave's hosts go through their steps at once; each host's failure
    # is its own (the others finish; the run stops before the next wave).
    # Their moves home (--migrate-back) share one poll of the cloud and
    # one slot pool, as their drains did.
    fleet = wave_mod.Fleet() if not req.migrate_back else drain.fleet_for(
        compute, cycling, req.drain_options,
        nova.Features.from_proxy(compute), run.runtime)
    done = fleet.run({h: (lambda h=h: _cycle(run, h, fleet))
                      for h in cycling})
    return all(done[h][0] for h in cycling) and ok


def _cycle(run, h, fleet):
    """One host's steps after its drain (``cycle_host``) as the row says:
    True when it was cycled."""
    results = run.results
    try:
        cycle_host(run, h, results[h], fleet)
        return True
    except Failed as exc:
        fail_host(run, results[h], exc.step, str(exc), output=exc.output)
    except KeyboardInterrupt:
        results[h].result = 'interrupted'
        results[h].message = 'interrupted; a rerun goes on from here'
    except Exception as exc:
        # Any other error is this host's row (the table is kept), not
        # a traceback that loses every row.
        fail_host(run, results[h], results[h].current or 'exec',
                  errors.one_line(exc))
    return False


def _refused(run, hosts, reports, skips):
    """The drain's pre-pass refused the wave (nothing changed: enabled, no
    lease, no move): a server would not fit the rest of the cloud or,
    ``skips`` (without --allow-skipped), would stay on its host.  Each row
    says which."""
    results = run.results
    plans = {r.host: r for r in reports}
    misfit = any(i.fits is False and i.action is not None
                 for r in reports for i in r.items)
    for h in hosts:
        plan = plans.get(h)
        items = drain.stays(plan) if plan is not None and skips else []
        results[h].result = 'failed'
        results[h].steps['drain'] = 'refused'
        if items:
            results[h].message = (
                'refused, nothing changed: %s would stay on the host (%s); '
                '--allow-skipped drains the rest and runs the step with it '
                'there' % (items[0].label, items[0].reason))
            if len(items) > 1:
                results[h].message += ' (and %d more server(s))' % (
                    len(items) - 1)
        elif misfit:
            results[h].message = 'drain %s' % reports[0].service_note
        else:   # (only ``skips`` refuses without a misfit)
            results[h].message = (
                'refused, nothing changed: another host of the wave holds a '
                'server the drain would leave behind')
        run.emit('failed', results[h].message, host=h, step='drain')
