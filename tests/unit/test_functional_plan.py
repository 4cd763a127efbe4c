"""tools/functional-plan's split of the functional test classes over the
workers (the planning only: the run itself is proven by every functional
run)."""

import importlib.machinery
import importlib.util
import os

import testtools

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def load_plan():
    path = os.path.join(ROOT, 'tools', 'functional-plan')
    loader = importlib.machinery.SourceFileLoader('functional_plan', path)
    spec = importlib.util.spec_from_loader('functional_plan', loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


class TestAssign(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.plan = load_plan()

    def test_longest_first_each_to_the_least_loaded_worker(self):
        known = {'A': 600, 'B': 500, 'C': 400, 'D': 300, 'E': 200}
        workers, _ = self.plan.assign({c: 1 for c in known}, known, 2)
        self.assertEqual([[1100, ['A', 'D', 'E']], [900, ['B', 'C']]],
                         workers)

    def test_every_class_once_never_more_workers_than_classes(self):
        tests = {'A': 3, 'B': 2}
        workers, _ = self.plan.assign(tests, {}, 4)
        self.assertEqual(2, len(workers))
        self.assertEqual(['A', 'B'], sorted(c for _, cs in workers
                                            for c in cs))

    def test_an_unlisted_class_counts_its_tests_at_the_mean(self):
        known = {'A': 100}          # 4 tests: 25 s a test
        workers, mean = self.plan.assign({'A': 4, 'New': 10}, known, 2)
        self.assertEqual(25, mean)
        self.assertEqual([[250, ['New']], [100, ['A']]], workers)

    def test_nothing_known_counts_20_s_a_test(self):
        workers, mean = self.plan.assign({'A': 2}, {}, 3)
        self.assertEqual((20.0, [[40.0, ['A']]]), (mean, workers))
