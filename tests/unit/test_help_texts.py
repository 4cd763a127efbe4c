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


# cliff's ``openstack --help`` lists each command with the first line of
# its description (``cliff/help.py``: ``split('\n')[0].rstrip('.')``), then
# " (osc-nodeops)"; nothing wraps it.  72 characters: PEP 8's limit for a
# docstring line, and with the longest command name the line stays
# within about 120 columns.
SUMMARY_MAX = 72


def summary_problems(name, description):
    """What is wrong with the summary ``openstack --help`` shows for a
    command whose description is ``description`` ('' when nothing)."""
    lines = description.split('\n')
    first = lines[0].strip()
    why = []
    if not first:
        why.append('no summary')
        return '%s: %s' % (name, ', '.join(why))
    if len(lines) > 1 and lines[1].strip():
        why.append('the summary goes on on the next line (help shows '
                   'only %r)' % first)
    if not first.endswith('.'):
        why.append('the summary does not end with a full stop')
    if not first[0].isupper():
        why.append('the summary does not start with a capital letter')
    if first.count('(') != first.count(')'):
        why.append('unbalanced parentheses')
    if len(first) > SUMMARY_MAX:
        why.append('%d characters, over %d' % (len(first), SUMMARY_MAX))
    return '%s: %s' % (name, '; '.join(why)) if why else ''


class TestHelpSummaries(testtools.TestCase):

    def test_every_summary_is_one_whole_line(self):
        problems = []
        for name, cls in commands():
            text = cls(mock.Mock(), None).get_description()
            problem = summary_problems(name, text)
            if problem:
                problems.append(problem)
        self.assertEqual([], problems)

    def test_the_check_sees_a_cut_summary(self):
        # Not a vacuous pass: the faults the check is for are found.
        self.assertIn('goes on on the next line', summary_problems(
            'x', 'Undo stop-service: unmask and start\nnova-compute.'))
        self.assertIn('full stop', summary_problems('x', 'List things'))
        self.assertIn('over 72', summary_problems('x', 'A' * 80 + '.'))
        self.assertIn('no summary', summary_problems('x', ''))
        self.assertEqual('', summary_problems(
            'x', 'Show a compute host as nova sees it.\n\nMore.'))
