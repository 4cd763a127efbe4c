"""The one wait: look until something is true or the time is up.

Over openstacksdk's ``openstack.utils.iterate_timeout`` (as its
``resource.wait_for_status`` is): the first look at once, then one every
``interval`` seconds until ``timeout`` seconds have passed.  Every wait loop
of osc-nodeops is this function with its own timeout, interval and faults.
"""

from openstack import exceptions as sdk_exc
from openstack import utils as sdk_utils


def wait_until(look, timeout, interval, retry_if=None, last_look=False):
    """``look()``'s first true value within ``timeout`` seconds, else None.

    ``retry_if(exc)`` true: a look that raised ``exc`` saw nothing (the
    wait goes on); any other exception ends the wait.  ``last_look``: when
    the time is up, one more look, whose value (true or not) is returned.
    """
    try:
        for _ in sdk_utils.iterate_timeout(timeout, 'timed out',
                                           wait=interval):
            try:
                value = look()
            except Exception as exc:
                if retry_if is None or not retry_if(exc):
                    raise
                continue
            if value:
                return value
    except sdk_exc.ResourceTimeout:
        pass
    return look() if last_look else None
