"""ops/cloud/calls.py call_with_retry: each call site's policy."""

import testtools

from osc_nodeops.ops.cloud import calls
from osc_nodeops.privileged import proc
from tests.unit import fakes


def _failing(times, exc):
    state = {'n': 0}

    def fn():
        state['n'] += 1
        if state['n'] <= times:
            raise exc
        return 'ok'
    return fn


class TestCallWithRetry(testtools.TestCase):

    def test_api_policy_pauses_1_2_4_8(self):
        pauses = []
        self.assertRaises(ConnectionError, calls.call_with_retry,
                          _failing(9, ConnectionError('reset')),
                          sleep=pauses.append)
        self.assertEqual([1.0, 2.0, 4.0, 8.0], pauses)

    def test_a_refusal_is_not_retried(self):
        pauses = []
        self.assertRaises(type(fakes.http_error(409)), calls.call_with_retry,
                          _failing(1, fakes.http_error(409)),
                          sleep=pauses.append)
        self.assertEqual([], pauses)

    def test_busy_device_policy_pauses_grow_linearly(self):
        # inspect-disk's unmount and detach (host.again_while_busy)
        pauses = []
        self.assertEqual('ok', calls.call_with_retry(
            _failing(4, proc.PrivilegedError('busy')), sleep=pauses.append,
            backoff=calls.linear(0.3),
            retry_if=lambda exc: isinstance(exc, proc.PrivilegedError)))
        self.assertEqual([0.3, 0.6, 0.9, 1.2],
                         [round(p, 6) for p in pauses])

    def test_no_backoff_no_pause(self):
        # placement's 409 re-read: again at once, 3 attempts
        pauses = []
        self.assertRaises(ValueError, calls.call_with_retry,
                          _failing(3, ValueError('moved')), attempts=3,
                          backoff=None, sleep=pauses.append,
                          retry_if=lambda exc: isinstance(exc, ValueError))
        self.assertEqual([], pauses)
