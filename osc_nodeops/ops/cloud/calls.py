"""API calls: transient faults, retries, request timeouts, discovery.

Every cloud call of a runbook goes through ``call_with_retry`` (the one
retry helper: transient faults, exponential backoff); ``is_transient`` says
which faults are worth retrying, ``describe`` makes one line of a fault.
``bound_api_timeout`` gives every request of a connection a timeout and
``discover`` builds each service's proxy on a real version document.
``Calls`` runs calls in daemon threads (the executor's pool);
``concurrently`` runs independent reads a few at a time (a plan's lists,
placement's per-host reads).
"""

import logging
import threading
import time
from concurrent import futures

import requests
from keystoneauth1 import exceptions as ksa_exc
from openstack import exceptions as sdk_exc

from osc_nodeops import errors

LOG = logging.getLogger(__name__)

# Seconds one HTTP request may take (connect, and each read) unless the
# operator says otherwise (--api-timeout); keystoneauth's Session.timeout.
DEFAULT_API_TIMEOUT = 60.0


def is_transient(exc):
    """True for faults worth retrying: 5xx, connection problems, timeouts."""
    status = errors.http_status(exc)
    if isinstance(status, int):
        return status >= 500 or status == 429
    if isinstance(exc, (ksa_exc.ConnectionError,
                        ksa_exc.RetriableConnectionFailure)):
        return True
    if isinstance(exc, ksa_exc.HttpError):
        return bool(exc.http_status and exc.http_status >= 500)
    if isinstance(exc, (requests.ConnectionError, requests.Timeout)):
        return True
    return isinstance(exc, (ConnectionError, TimeoutError))


def bound_api_timeout(conn, seconds=None):
    """Give every API request of ``conn`` a timeout: ``seconds``, else the
    one the session has, else ``DEFAULT_API_TIMEOUT``.

    OSC builds its session without one (osc-lib drops ``api_timeout``), so a
    half-open connection would hang a call for ever.  keystoneauth applies
    ``Session.timeout`` to every request of the connection (token requests
    included); a request that times out raises ``ConnectTimeout``, which
    ``is_transient`` counts as a transient fault.  Returns the timeout.
    """
    session = getattr(conn, 'session', None)
    if session is None:
        return None
    if seconds is not None:
        session.timeout = float(seconds)
    elif getattr(session, 'timeout', None) is None:
        session.timeout = DEFAULT_API_TIMEOUT
    return session.timeout


# Services whose proxy every command builds first (see ``discover``).
DISCOVERED_SERVICES = ('compute', 'network')


def _discovered(proxy):
    """True when PROXY was built on a version document: its endpoint is
    the versioned URL discovery found (and, for nova, the microversion
    range is known)."""
    data = proxy.get_endpoint_data()
    if data is None or not data.api_version:
        return False
    if proxy.service_type == 'compute' and not data.max_microversion:
        return False
    endpoint = proxy.get_endpoint() or ''
    return endpoint.rstrip('/') == (data.url or '').rstrip('/')


def discover(conn, services=DISCOVERED_SERVICES, attempts=5, sleep=None):
    """Build each service's proxy on a real version document.

    openstacksdk builds a service's proxy once per connection, after
    version discovery, and keystoneauth takes a discovery that met a 5xx
    or a reset for "no version document" and falls back to the bare
    catalog (or override) URL: neutron requests then miss ``/v2.0`` and
    get 404, and nova's microversions are unknown (2.1 is assumed) for the
    whole run.  So a transient fault in the first second of a command
    would change what the command does.  Here each proxy is built and
    checked; one built on a failed discovery is forgotten (openstacksdk's
    per-connection cache ``Connection._proxies``: a private attribute,
    used deliberately, since openstacksdk offers no way to rebuild a
    proxy) and built again by ``call_with_retry``.  After ATTEMPTS,
    ``errors.Refused`` (nothing was changed yet).
    """
    cache = getattr(conn, '_proxies', None)
    if not isinstance(cache, dict):
        return      # not an openstacksdk Connection: nothing is cached
    for name in services:
        def build():
            try:
                proxy = getattr(conn, name)
            except Exception as exc:
                if _discovery_fault(exc):   # a fault: try again
                    raise ConnectionError(
                        errors.one_line(exc, style=errors.STATUS)) from exc
                raise
            if not _discovered(proxy):
                raise ConnectionError(
                    'no version document from the %s API' % name)

        def forget(exc, n):
            LOG.debug('discovery of %s failed (%s); again', name, exc)
            cache.pop(getattr(getattr(type(conn), name, None),
                              'service_type', name), None)

        try:
            call_with_retry(build, attempts=attempts, sleep=sleep,
                            on_retry=forget)
        except Exception as exc:
            if not is_transient(exc):
                raise
            raise errors.Refused(
                'cannot read the version document of the %s API '
                '(%d attempts, last: %s); nothing changed' % (
                    name, attempts,
                    errors.one_line(exc, style=errors.STATUS)))


def _discovery_fault(exc):
    """The errors openstacksdk raises when a version document could not be
    read (``NotSupported``, ``ServiceDiscoveryException``)."""
    return isinstance(exc, (sdk_exc.NotSupported,
                            sdk_exc.ServiceDiscoveryException))


class Calls(object):
    """Runs API calls, each in its own daemon thread.

    Not a ``ThreadPoolExecutor``: that one joins its workers at interpreter
    exit, so a call that never returns would keep the process alive after
    a second Ctrl-C.  At most one call per item is pending (and one poll),
    so the number of threads stays bounded by ``max_parallel + 1``.
    """

    def __init__(self, wake=None):
        self.wake = wake

    def submit(self, fn):
        fut: futures.Future = futures.Future()

        def run():
            if not fut.set_running_or_notify_cancel():
                return
            try:
                result = fn()
            except BaseException as exc:
                fut.set_exception(exc)
            else:
                fut.set_result(result)
            finally:
                if self.wake is not None:
                    self.wake.set()
        threading.Thread(target=run, name='nodeops-call', daemon=True).start()
        return fut


# Reads at once of one ``concurrently``: the API's workers and the
# client's connection pool (requests keeps 10 per host) bound the gain.
READERS = 8


def concurrently(fns, workers=READERS):
    """The results of the calls ``fns`` (reads: independent, each retried
    as its caller says), in order, made at most ``workers`` at a time in
    daemon threads (``Calls``: a call that hangs does not keep the process
    alive).  The first call to fail (in the order of ``fns``) raises,
    after the others have ended.  No thread for fewer than two calls."""
    fns = list(fns)
    if len(fns) < 2 or workers < 2:
        return [fn() for fn in fns]
    results: list = [None] * len(fns)
    failed: dict = {}
    todo = iter(enumerate(fns))
    lock = threading.Lock()

    def work():
        while True:
            with lock:
                index, fn = next(todo, (-1, None))
            if fn is None:
                return
            try:
                results[index] = fn()
            except Exception as exc:
                failed[index] = exc
    pool = Calls()
    for fut in [pool.submit(work) for _ in range(min(workers, len(fns)))]:
        fut.result()
    if failed:
        raise failed[min(failed)]
    return results


def exponential(delay=1.0, cap=15.0):
    """Pauses of ``delay``, twice that, four times ... at most ``cap`` s."""
    return lambda n: min(cap, delay * (2 ** n))


def linear(delay):
    """Pauses of ``delay``, twice that, three times ..."""
    return lambda n: delay * (n + 1)


#: The API calls' backoff: 1, 2, 4, 8 s (at most 15).
EXPONENTIAL = exponential()


#: The tries of an API call (the first and the retries).
ATTEMPTS = 5


def call_with_retry(fn, attempts=ATTEMPTS, backoff=EXPONENTIAL, sleep=None,
                    on_retry=None, retry_if=is_transient):
    """Call ``fn()``; again after a pause while it raises an error that
    ``retry_if`` accepts (transient faults), at most ``attempts`` times.

    The one retry of osc-nodeops: each call site names its policy (its
    ``attempts``, ``backoff(n)``: the pause after the n-th failure, from 0,
    None for none; ``retry_if``).  ``on_retry(exc, n)`` is told of each
    failure that is tried again; what it raises ends the retries.
    """
    sleep = sleep or time.sleep
    for n in range(attempts):
        try:
            return fn()
        except Exception as exc:
            if not retry_if(exc) or n == attempts - 1:
                raise
            if on_retry:
                on_retry(exc, n + 1)
            if backoff is not None:
                sleep(backoff(n))
