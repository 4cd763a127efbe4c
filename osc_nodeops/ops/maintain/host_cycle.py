"""``compute node maintain``: one drained host's cycle: the operator's
``--exec`` step, the wait until its nova-compute is up with a heartbeat
newer than the step, ``--check``, the undrain; and the host's lease and
disabled reason along the way."""

import dataclasses

from osc_nodeops import errors
from osc_nodeops import timeutil
from osc_nodeops.ops import campaign
from osc_nodeops.ops import drain
from osc_nodeops.ops import engine
from osc_nodeops.ops.cloud import calls
from osc_nodeops.ops.cloud import waiting
from osc_nodeops.ops.maintain.common import Failed
from osc_nodeops.ops.maintain.common import STEPS
from osc_nodeops.privileged import operator_step


def taken_lease(run, host, svc):
    """The lease another run took on ``host`` since this run started (not
    the one ``check_lease`` let it take over), or None."""
    held = drain.parse_lease(svc.disabled_reason)
    if svc.status != 'disabled' or held is None or held[0] == run.owner:
        return None
    if run.leases_at_start.get(host) == held:
        return None
    return held



def forward_events(emit):
    def events(event):
        emit.events(event) if emit.events else None
    return events


def hold_host(run, host, why):
    """Keep the host disabled under our lease for the rest of the cycle;
    the reason names the steps done (``steps_in_reason``).  A lease
    another run took since this run started is left alone (``Failed``)."""
    compute = run.conn.compute
    svc = drain.compute_service(compute, host)
    held = taken_lease(run, host, svc)
    if held:
        raise Failed(run.results[host].current or 'drain',
                      'leased by %s since %s after this run started; left '
                      'to it' % held)
    done = [s for s in STEPS if run.state.done(host, s)]
    reason = '%s%s (osc-nodeops compute node maintain)' % (
        'maintain done=%s: ' % ','.join(done) if done else 'maintenance: ',
        why)
    drain.set_disabled(engine.Context(compute, host), svc,
                       drain.with_lease(reason, run.owner))


def fail_host(run, result, step, why, output=None):
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
        hold_host(run, result.host, 'left disabled: %s failed at %s: %s' % (
            step, timeutil.api_time(timeutil.utcnow()), why))
    except Exception as exc:
        run.emit('warning', 'could not set the reason: %s' % (
            errors.one_line(exc),), host=result.host, step=step)


def _exec(run, host, result, fleet=None):
    """The operator's --exec, recorded as started before it runs: a kill
    or an interruption leaves ``exec-start`` without its end, and no
    rerun starts it again without ``--rerun-exec HOST``."""
    req, state, emit = run.req, run.state, run.emit
    rerun = host in req.rerun_exec
    if state.done(host, campaign.EXEC_STARTED) and not rerun:
        raise Failed('exec', 'started by an earlier run at %s and never '
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
        _step(run, host, 'exec', req.exec_cmd, req.exec_timeout, fleet)
    except KeyboardInterrupt:
        try:
            state.mark(host, campaign.EXEC_INTERRUPTED)
        except Exception as exc:
            emit('warning', 'could not record "exec interrupted": %s'
                 % errors.one_line(exc), host=host, step='exec')
        emit('interrupt', 'exec interrupted; its process group ended',
             host=host, step='exec')
        raise
    except Failed as exc:
        if exc.status is not None:  # it ended: a rerun may run it again
            state.forget(host, campaign.EXEC_STARTED)
        raise
    state.mark(host, 'exec', drop=(campaign.EXEC_STARTED,))
    result.steps['exec'] = 'done'
    hold_host(run, host, 'step done, waiting for nova-compute')
    emit('done', 'exit 0', host=host, step='exec')
    return True


def cycle_host(run, host, result, fleet=None):
    """``--exec``, the wait, ``--check`` and the undrain of one drained
    host.  ``fleet``: the ``wave.Fleet`` of the hosts of its wave cycled
    at once (each in a thread): its Ctrl-C ends the step and the waits
    (``KeyboardInterrupt``) and reaches the undrain's moves."""
    req, state, emit = run.req, run.state, run.emit
    compute = run.conn.compute
    check = fleet.check if fleet is not None else (lambda: None)
    runtime = run.runtime if fleet is None else dataclasses.replace(
        run.runtime, sleep=fleet.sleep)
    step_ended = timeutil.utcnow()
    if req.exec_cmd and _exec(run, host, result, fleet):
        step_ended = timeutil.utcnow()
    check()
    if not state.done(host, 'wait'):
        result.current = 'wait'
        emit('start', 'waiting for nova-compute up with a fresh heartbeat',
             host=host, step='wait')
        wait_up(compute, host, step_ended, req, runtime)
        state.mark(host, 'wait')
        result.steps['wait'] = 'done'
        emit('done', 'nova-compute up', host=host, step='wait')
    if req.check_cmd and not state.done(host, 'check'):
        result.current = 'check'
        emit('start', req.check_cmd, host=host, step='check')
        _step(run, host, 'check', req.check_cmd, req.check_timeout, fleet)
        state.mark(host, 'check')
        result.steps['check'] = 'done'
    check()
    _undrain(run, host, result, runtime, fleet)


def _undrain(run, host, result, runtime, fleet):
    """The cycle's last step: enable (and with ``--migrate-back`` bring
    its servers home); a host kept disabled gets its own reason back."""
    req, state, emit = run.req, run.state, run.emit
    compute = run.conn.compute
    result.current = 'undrain'
    emit('start', 'undraining', host=host, step='undrain')
    svc = drain.compute_service(compute, host)
    held = taken_lease(run, host, svc)
    if held:
        raise Failed('undrain', 'leased by %s since %s after this run '
                      'started; left to it' % held)
    kept = run.kept.get(host)
    # --exclude is the drain's: an excluded server never left its host,
    # so there is nothing of it to bring back.
    opts = dataclasses.replace(req.drain_options,
                               migrate_back=req.migrate_back and kept is None,
                               keep_disabled=kept is not None,
                               break_lease=False, exclude=())
    report = drain.undrain_host(compute, host, svc, opts,
                                events=forward_events(emit),
                                runtime=runtime, fleet=fleet)
    moved = sum(1 for i in report.items if i.action and i.ok)
    result.moved_back = moved if opts.migrate_back else None
    if not report.ok:
        raise Failed('undrain', 'not every server went home (%d did)'
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


def _step(run, host, step, cmd, timeout, fleet=None):
    """Run the operator's ``cmd`` for ``host``; ``Failed`` unless it
    exits 0.  Its output is an event (stderr, ``--events``).  A Ctrl-C
    (``fleet.cancelled`` in a wave's thread) ends its process group."""
    req, emit = run.req, run.emit
    started = timeutil.utcnow()
    try:
        rc, out = operator_step.run(
            cmd, host, timeout, forward=req.exec_env,
            cancel=fleet.cancelled if fleet is not None else None)
    except (operator_step.StepError, OSError) as exc:
        raise Failed(step, errors.one_line(exc), status='not started')
    if out:
        emit('output', out, host=host, step=step)
    if rc is None:
        raise Failed(step, 'did not finish within %ss (started %s)' % (
            timeutil.seconds_text(timeout), timeutil.api_time(started)),
            output=out)
    if rc != 0:
        raise Failed(step, 'exit %d' % rc, output=out, status=rc)


def service_up(svc, since):
    """nova-compute up, not forced down, with a heartbeat newer than
    ``since`` (what ``compute node show`` reports as state and age)."""
    beat = timeutil.parse_time(svc.updated_at)
    return (svc.state == 'up' and not svc.is_forced_down and beat is not None
            and beat > since)


def wait_up(compute, host, since, req, runtime):
    def look():
        svc = drain.compute_service(compute, host)
        return svc if service_up(svc, since) else None

    # Not listed while it restarts (NotFound), or the API's own trouble
    # (retried already): a look that saw nothing.
    try:
        svc = waiting.wait_until(
            look, req.up_timeout, req.poll_interval,
            retry_if=lambda exc: isinstance(exc, errors.NotFound) or
            calls.is_transient(exc), runtime=runtime)
    except Exception as exc:
        raise Failed('wait', errors.one_line(exc))
    if svc is None:
        raise Failed('wait', 'nova-compute not up with a heartbeat newer '
                      'than the step within %ss' % timeutil.seconds_text(
                          req.up_timeout))
    return svc
