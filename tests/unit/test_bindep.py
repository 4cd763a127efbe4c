"""bindep.txt lists the system packages the project's own scripts
install, under the right profile: ``local`` (what the ``[local]`` extra
needs to build libvirt-python and the local commands run) and ``test``
(the tests and the minicloud), so an operator's ``bindep local`` and a
developer's ``bindep test`` say what is missing."""

import ast
import os
import re

import testtools

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def bindep_entries(text):
    """``{package: {selector, ...}}`` of bindep.txt lines."""
    out = {}
    for line in text.splitlines():
        line = line.split('#', 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r'([A-Za-z0-9][A-Za-z0-9.+_-]*)(?:\s+\[([^\]]*)\])?',
                         line)
        if not m:
            raise ValueError('not a bindep line: %r' % line)
        out[m.group(1)] = set((m.group(2) or '').split())
    return out


def profile(entries, name):
    return {pkg for pkg, sel in entries.items() if name in sel}


def bootstrap_debs():
    """The Debian packages tools/bootstrap installs (its ``debs=(...)``)."""
    with open(os.path.join(ROOT, 'tools', 'bootstrap')) as f:
        m = re.search(r'^debs=\(([^)]*)\)', f.read(), re.M)
    return set(m.group(1).split())


def minicloud_debs():
    """The Debian packages the minicloud installs (its ``DEBS``)."""
    path = os.path.join(ROOT, 'tools', 'minicloud', 'minicloud')
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    for node in tree.body:
        names = [getattr(t, 'id', None)
                 for t in getattr(node, 'targets', ())]
        if isinstance(node, ast.Assign) and names == ['DEBS']:
            return set(ast.literal_eval(node.value))
    raise AssertionError('no DEBS in tools/minicloud/minicloud')


def entries():
    with open(os.path.join(ROOT, 'bindep.txt')) as f:
        return bindep_entries(f.read())


class TestBindep(testtools.TestCase):

    def test_every_entry_is_debian_and_profiled(self):
        for pkg, sel in entries().items():
            self.assertIn('platform:dpkg', sel, pkg)
            self.assertTrue(sel & {'local', 'test'}, pkg)

    def test_local_builds_libvirt_python(self):
        self.assertLessEqual({'gcc', 'pkg-config', 'python3-dev',
                              'libvirt-dev'}, profile(entries(), 'local'))

    def test_the_tests_need_what_local_needs(self):
        # The tests install the [local] extra and run the local steps.
        have = entries()
        self.assertLessEqual(profile(have, 'local'), profile(have, 'test'))

    def test_what_the_scripts_install_is_listed(self):
        test = profile(entries(), 'test')
        self.assertEqual(set(), bootstrap_debs() - test)
        self.assertEqual(set(), minicloud_debs() - test)

    def test_the_readers_see_the_lists(self):
        # Not a vacuous pass: each list is read.
        self.assertIn('libvirt-dev', bootstrap_debs())
        self.assertIn('mariadb-server', minicloud_debs())
        self.assertEqual(
            {'gcc': {'platform:dpkg', 'local'}, 'zlib': set()},
            bindep_entries('# c\ngcc [platform:dpkg local]  # cc\n\nzlib\n'))
        self.assertRaises(ValueError, bindep_entries, 'gcc [local')
