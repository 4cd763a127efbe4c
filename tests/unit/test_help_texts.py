"""What every command's --help says: plain words (no runbook step numbers,
which users do not know) and the exit-status table."""

import importlib.metadata
import re
from unittest import mock

import testtools

STEP = re.compile(r'\bS\d{1,2}\b')


def commands():
    eps = importlib.metadata.entry_points(group='openstack.nodeops.v1')
    return sorted((ep.name, ep.load()) for ep in eps)


class TestHelpTexts(testtools.TestCase):

    def test_every_command_is_found(self):
        names = [name for name, _cls in commands()]
        self.assertIn('compute_node_drain', names)
        self.assertIn('server_recover-all', names)
        self.assertGreaterEqual(len(names), 14)

    def test_no_runbook_step_numbers(self):
        found = {}
        for name, cls in commands():
            text = cls(mock.Mock(), None).get_parser(name).format_help()
            steps = STEP.findall(text)
            if steps:
                found[name] = steps
        self.assertEqual({}, found)

    def test_every_help_ends_with_the_exit_statuses(self):
        for name, cls in commands():
            text = cls(mock.Mock(), None).get_parser(name).format_help()
            self.assertIn('Exit status:', text, name)
            self.assertIn('130 interrupted by Ctrl-C', text, name)

    def test_every_command_takes_sigint_in_the_one_base(self):
        # Ctrl-C ends any command (v1/base.py take_sigint), also one
        # started with SIGINT ignored: each runs through ExitStatusMixin.
        from osc_nodeops.v1 import base
        for name, cls in commands():
            self.assertTrue(issubclass(cls, base.ExitStatusMixin), name)
