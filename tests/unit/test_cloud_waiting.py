"""ops/cloud/waiting.py: the one wait loop."""

import testtools

from osc_nodeops.ops import runtime
from osc_nodeops.ops.cloud import waiting
from tests.unit.test_audit import Clock


class _Looks(object):
    """A look that answers ``answers`` in turn (an exception is raised)."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.count = 0

    def __call__(self):
        self.count += 1
        answer = self.answers.pop(0) if self.answers else None
        if isinstance(answer, Exception):
            raise answer
        return answer


class TestWaitUntil(testtools.TestCase):

    def test_on_the_runtimes_clock_and_sleep(self):
        # a look at 0, 2, 4 and (the time up at 6) the last one
        clock = Clock()  # moves only when the wait sleeps
        seen = []
        look = _Looks()
        self.assertIsNone(waiting.wait_until(
            lambda: seen.append(clock.now) or look(), 6, 2, last_look=True,
            runtime=runtime.Runtime(clock=clock, sleep=clock.sleep)))
        self.assertEqual([0.0, 2.0, 4.0, 6.0], seen)
        self.assertEqual([2, 2, 2], clock.slept)

    def test_first_true_value(self):
        look = _Looks(None, 0, 'there')
        self.assertEqual('there', waiting.wait_until(look, 5, 0.001))
        self.assertEqual(3, look.count)

    def test_timeout_is_none(self):
        look = _Looks()
        self.assertIsNone(waiting.wait_until(look, 0.05, 0.01))
        self.assertGreater(look.count, 1)

    def test_last_look_after_the_time_is_up(self):
        # the time is up before the first look: only last_look looks
        look = _Looks('late')
        self.assertIsNone(waiting.wait_until(look, 0, 0.01))
        self.assertEqual(0, look.count)
        self.assertEqual('late', waiting.wait_until(look, 0, 0.01,
                                                    last_look=True))
        self.assertEqual(1, look.count)
        self.assertIsNone(waiting.wait_until(_Looks(None), 0, 0.01,
                                             last_look=True))

    def test_a_fault_retry_if_accepts_is_a_look_that_saw_nothing(self):
        look = _Looks(ConnectionError('reset'), 'up')
        self.assertEqual('up', waiting.wait_until(
            look, 5, 0.001,
            retry_if=lambda exc: isinstance(exc, ConnectionError)))

    def test_any_other_fault_ends_the_wait(self):
        look = _Looks(ValueError('bad'), 'up')
        self.assertRaises(ValueError, waiting.wait_until, look, 5, 0.001,
                          retry_if=lambda exc: isinstance(exc,
                                                          ConnectionError))
        self.assertRaises(ValueError, waiting.wait_until,
                          _Looks(ValueError('bad')), 5, 0.001)
