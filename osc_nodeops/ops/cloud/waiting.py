"""The one wait: look until something is true or the time is up.

As openstacksdk's ``openstack.utils.iterate_timeout`` (which its
``resource.wait_for_status`` uses) looks: the first look at once, then one
every ``interval`` seconds until ``timeout`` seconds have passed; but on
the clock and sleep of the run's ``runtime.Runtime``, so that a test moves
time instead of waiting it out (the SDK's loop reads ``time.time`` and
sleeps ``time.sleep``).  Every wait loop of osc-nodeops is this function
with its own timeout, interval and faults.
"""

from osc_nodeops.ops import runtime as runtime_mod


def wait_until(look, timeout, interval, retry_if=None, last_look=False,
               runtime=None):
    """``look()``'s first true value within ``timeout`` seconds, else None.

    ``retry_if(exc)`` true: a look that raised ``exc`` saw nothing (the
    wait goes on); any other exception ends the wait.  ``last_look``: when
    the time is up, one more look, whose value (true or not) is returned.
    ``runtime``: its ``clock`` and ``sleep`` (the real ones by default).
    """
    runtime = runtime or runtime_mod.Runtime()
    if not interval:  # as iterate_timeout: never a busy loop
        interval = min(0.1, timeout)
    deadline = runtime.clock() + timeout
    while runtime.clock() < deadline:
        try:
            value = look()
        except Exception as exc:
            if retry_if is None or not retry_if(exc):
                raise
            value = None
        if value:
            return value
        runtime.sleep(interval)
    return look() if last_look else None
