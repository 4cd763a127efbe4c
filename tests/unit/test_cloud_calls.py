"""ops/cloud/calls.py call_with_retry: each call site's policy."""

import threading
import time

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


class TestConcurrently(testtools.TestCase):

    def test_results_in_order_at_most_workers_at_once(self):
        lock = threading.Lock()
        state = {'now': 0, 'most': 0}
        gate = threading.Barrier(3, timeout=10)

        def read(n):
            def fn():
                with lock:
                    state['now'] += 1
                    state['most'] = max(state['most'], state['now'])
                if n < 3:
                    gate.wait()   # the first three are in flight together
                with lock:
                    state['now'] -= 1
                return n * n
            return fn
        self.assertEqual([n * n for n in range(10)], calls.concurrently(
            [read(n) for n in range(10)], workers=3))
        self.assertEqual(3, state['most'])

    def test_the_first_failure_raises_after_the_others_end(self):
        done = []

        def ok(n):
            def fn():
                time.sleep(0.01)
                done.append(n)
                return n
            return fn

        def bad(exc):
            def fn():
                raise exc
            return fn
        exc = self.assertRaises(ValueError, calls.concurrently, [
            ok(0), bad(ValueError('first')), ok(2), bad(KeyError('later')),
            ok(4)], workers=2)
        self.assertEqual('first', str(exc))
        self.assertEqual([0, 2, 4], sorted(done))

    def test_one_call_runs_in_the_caller(self):
        me = threading.current_thread()
        self.assertEqual([me], calls.concurrently(
            [threading.current_thread]))
