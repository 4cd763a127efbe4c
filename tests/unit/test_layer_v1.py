"""The layer rule, read from the source: v1 (cliff commands) imports only
ops, osc-lib and cliff, never the DB or the privileged layer."""

import ast
import os

import fixtures
import testtools

import osc_nodeops.v1

V1 = os.path.dirname(osc_nodeops.v1.__file__)
FORBIDDEN = ('osc_nodeops.db', 'osc_nodeops.privileged')


def imported_modules(path):
    """Every module an ``import`` / ``from ... import`` of PATH names,
    also the ones inside functions."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
            names.extend('%s.%s' % (node.module, alias.name)
                         for alias in node.names)
    return names


def forbidden(names):
    return sorted({n for n in names for f in FORBIDDEN
                   if n == f or n.startswith(f + '.')})


class TestV1Layer(testtools.TestCase):

    def test_v1_imports_neither_db_nor_privileged(self):
        found = {}
        for name in sorted(os.listdir(V1)):
            if name.endswith('.py'):
                bad = forbidden(imported_modules(os.path.join(V1, name)))
                if bad:
                    found[name] = bad
        self.assertEqual({}, found)

    def test_the_check_sees_each_form(self):
        # ``from osc_nodeops import db`` and imports inside functions count
        tmp = self.useFixture(fixtures.TempDir()).path
        found = []
        for n, code in enumerate((
                'import osc_nodeops.db.url',
                'from osc_nodeops import privileged',
                'def f():\n    from osc_nodeops.db import journal\n',
                'from osc_nodeops.ops import recover')):
            path = os.path.join(tmp, 'm%d.py' % n)
            with open(path, 'w') as f:
                f.write(code)
            found.append(forbidden(imported_modules(path)))
        self.assertEqual([['osc_nodeops.db.url'],
                          ['osc_nodeops.privileged'],
                          ['osc_nodeops.db', 'osc_nodeops.db.journal'],
                          []], found)
