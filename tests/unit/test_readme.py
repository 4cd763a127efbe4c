"""README.rst's command table names every command of the entry points
(setup.cfg ``[entry_points] openstack.nodeops.v1``), and no other, so the
two cannot drift apart again (the table once missed four commands)."""

import configparser
import os
import re

import testtools

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def entry_point_commands():
    """The ``openstack`` commands setup.cfg declares, as typed
    (``compute_node_drain`` -> ``compute node drain``)."""
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(ROOT, 'setup.cfg'))
    out = set()
    for line in cfg.get('entry_points', 'openstack.nodeops.v1').splitlines():
        line = line.strip()
        if line:
            out.add(line.split('=', 1)[0].strip().replace('_', ' '))
    return out


def table_commands(text):
    """The commands named in the first column of README's command table:
    the words after ``openstack`` up to the first argument (an upper-case
    placeholder, an option or ``...``)."""
    lines = text.splitlines()
    rules = [i for i, line in enumerate(lines) if re.match(r'^=+ +=+$', line)]
    if len(rules) < 3:
        return set()
    out = set()
    for line in lines[rules[1] + 1:rules[2]]:
        m = re.match(r'^``openstack ([^`]*)``', line)
        if not m:
            continue
        words = []
        for word in m.group(1).split():
            if not re.fullmatch(r'[a-z][a-z-]*', word):
                break
            words.append(word)
        out.add(' '.join(words))
    return out


def readme_table():
    with open(os.path.join(ROOT, 'README.rst')) as f:
        return table_commands(f.read())


class TestReadmeTable(testtools.TestCase):

    def test_the_table_names_every_command(self):
        self.assertEqual([], sorted(entry_point_commands() - readme_table()))

    def test_the_table_names_no_other_command(self):
        self.assertEqual([], sorted(readme_table() - entry_point_commands()))

    def test_the_parsers_see_the_commands(self):
        # Not a vacuous pass: both sides are read.
        self.assertIn('compute node drain', entry_point_commands())
        self.assertIn('server recover-all', entry_point_commands())
        self.assertGreaterEqual(len(entry_point_commands()), 18)
        self.assertEqual({'compute node show', 'port float'}, table_commands(
            'Intro\n\n====  ====\nCommand  Steps\n====  ====\n'
            '``openstack compute node show HOST``  a\n'
            '``openstack port float ...``  b\n'
            '====  ====\n'))
