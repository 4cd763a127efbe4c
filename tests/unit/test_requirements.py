"""Every third-party module osc_nodeops imports is declared.

A module that another requirement happens to bring (rich through cliff,
requests through keystoneauth1) works until that requirement drops it; so
each top-level import of the package, at module level or inside a function
(and ``importlib.import_module('name')``), must map, through the installed
distributions, to a line of requirements.txt or of an extra in setup.cfg
(``[extras]``: libvirt-python for the local steps).
"""

import ast
import configparser
import importlib.metadata
import os
import re
import sys

import testtools

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
PACKAGE = 'osc_nodeops'


def normalise(name):
    """A distribution name as PEP 503 compares them."""
    return re.sub(r'[-_.]+', '-', name).lower()


def requirement_names(lines):
    """The distribution names of requirement lines (comments, blank lines,
    versions, extras and markers left out)."""
    names = set()
    for line in lines:
        line = line.split('#', 1)[0].strip()
        if line:
            names.add(normalise(re.match(r'[A-Za-z0-9][A-Za-z0-9._-]*',
                                         line).group(0)))
    return names


def declared():
    """``{distribution: where}`` of requirements.txt and setup.cfg's
    extras."""
    out = {}
    with open(os.path.join(ROOT, 'requirements.txt')) as f:
        for name in requirement_names(f):
            out[name] = 'requirements.txt'
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(ROOT, 'setup.cfg'))
    if cfg.has_section('extras'):
        for extra, text in cfg.items('extras'):
            for name in requirement_names(text.splitlines()):
                out.setdefault(name, 'setup.cfg extra %s' % extra)
    return out


def _imported(node):
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        return [node.module]
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == 'import_module' and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)):
        return [node.args[0].value]
    return []


def third_party_imports():
    """``{top-level module: [file, ...]}`` of every import of the package
    that is neither the standard library nor the package itself."""
    found = {}
    for folder, _dirs, files in os.walk(os.path.join(ROOT, PACKAGE)):
        for name in sorted(files):
            if not name.endswith('.py'):
                continue
            path = os.path.join(folder, name)
            with open(path) as f:
                tree = ast.parse(f.read(), path)
            for node in ast.walk(tree):
                for module in _imported(node):
                    top = module.split('.')[0]
                    if top != PACKAGE and top not in sys.stdlib_module_names:
                        found.setdefault(top, []).append(
                            os.path.relpath(path, ROOT))
    return found


def undeclared():
    """One line per third-party import whose distribution is not declared
    (or that no installed distribution provides)."""
    dists = importlib.metadata.packages_distributions()
    have = declared()
    out = []
    for module, paths in sorted(third_party_imports().items()):
        names = dists.get(module)
        if not names:
            out.append('%s (%s): no installed distribution provides it'
                       % (module, paths[0]))
        elif not any(normalise(n) in have for n in names):
            out.append('%s (%s): %s is not in requirements.txt nor in an '
                       'extra of setup.cfg' % (module, paths[0],
                                               ' or '.join(names)))
    return out


class TestRequirements(testtools.TestCase):

    def test_every_third_party_import_is_declared(self):
        self.assertEqual([], undeclared())

    def test_the_walk_sees_the_imports(self):
        # Not a vacuous pass: module-level, function-level and
        # import_module() imports are all found, and mapped.
        found = third_party_imports()
        for module in ('openstack', 'cliff', 'libvirt', 'pymysql',
                       'requests', 'rich'):
            self.assertIn(module, found)
        self.assertNotIn('os', found)
        self.assertNotIn(PACKAGE, found)
        have = declared()
        self.assertEqual('requirements.txt', have['openstacksdk'])
        self.assertEqual('setup.cfg extra local', have['libvirt-python'])

    def test_requirement_names(self):
        self.assertEqual(
            {'pymysql', 'osc-lib', 'libvirt-python'},
            requirement_names(['PyMySQL>=1.0.0  # the DB steps', '',
                               '# a comment', 'osc_lib>=3.0.0',
                               'libvirt-python>=9.0.0; '
                               'sys_platform=="linux"']))

    def test_osc_lib_is_the_requirement_not_openstackclient(self):
        # As osc-placement: a plugin needs osc-lib (and cliff); OSC
        # (python-openstackclient) provides the ``openstack`` command the
        # operator installs beside it (doc/source/install.rst), and only
        # the tests need it here.  No module may import it then.
        self.assertNotIn('openstackclient', third_party_imports())
        with open(os.path.join(ROOT, 'requirements.txt')) as f:
            runtime = requirement_names(f)
        self.assertIn('osc-lib', runtime)
        self.assertNotIn('python-openstackclient', runtime)
        with open(os.path.join(ROOT, 'test-requirements.txt')) as f:
            self.assertIn('python-openstackclient', requirement_names(f))
