"""The rules that keep the layout (``doc/source/contributor/architecture.rst``,
issue 22), read from the source with ``ast`` (nothing is imported):

* size: no module over ``MAX_MODULE_LINES`` lines;
* no import cycle among ``osc_nodeops`` modules;
* imports go down only (``LAYERS``), and a runbook uses another only
  through its package (``from osc_nodeops.ops import drain``);
* no import inside a function in ``osc_nodeops/ops`` (``v1`` keeps its lazy
  imports: start-up time of every ``openstack`` run);
* every mechanism once: sleeping, sleep loops, retry loops and placement
  HTTP only in their homes (``MECHANISM_HOMES``);
* at most ``MAX_PARAMETERS`` parameters per function.

Where a rule is not yet true, the module is named in an allowlist below
with what removes it: each entry is a debt, never a blanket skip, and an
entry only allows what is there today (a count or a size), not more.
"""

import ast
import collections
import configparser
import os
import re
import tokenize

import fixtures
import testtools
from testtools import content

import osc_nodeops

PACKAGE = os.path.dirname(os.path.abspath(osc_nodeops.__file__))
ROOT = os.path.dirname(PACKAGE)

MAX_MODULE_LINES = 700   # issue 22's limit; 600 is the aim
MAX_PARAMETERS = 6

# module -> (lines it may have until it is split, who splits it).  The
# size of 2026-12-03 07:30 plus a margin of about 1% for the import
# renames of the splits in flight; it only goes down.
OVERSIZED = {
}

# Sets of modules allowed to import each other (at any depth) today:
# none since ops/recover/ (the dbmove <-> recover cycle is gone).
CYCLES: dict = {}

# Layers, top first: a module imports only from its own layer or below.
# A module belongs to the layer of its longest matching prefix.  A new
# package under ops/ is a runbook unless it is listed lower down.
LAYERS = (
    ('plugin', ('osc_nodeops.plugin',)),
    ('v1', ('osc_nodeops.v1',)),
    ('runbooks', ('osc_nodeops.ops',)),
    ('engine', ('osc_nodeops.ops.engine',)),
    ('cloud', ('osc_nodeops.ops.cloud', 'osc_nodeops.ops.runtime')),
    ('db, privileged', ('osc_nodeops.db', 'osc_nodeops.privileged')),
    ('files', ('osc_nodeops.safefile', 'osc_nodeops.durable')),
    ('base', ('osc_nodeops.errors', 'osc_nodeops.timeutil',
              'osc_nodeops.terminal')),
)
PACKAGE_INITS = ('osc_nodeops', 'osc_nodeops.ops')  # empty: no layer

# (importer, imported) -> what removes it: imports against the layers or
# into another runbook's inside.
UPWARD: dict = {}

# The debts below are counted per GROUP of modules (name prefixes), so a
# split that moves code from a module into its new package, or from one
# module of a group to another, keeps the allowance; a group's count may
# only go down.  Modules in no group are allowed none.
#   group -> (prefixes, {kind: count today}, what removes it)
DRAIN = ('osc_nodeops.ops.drain', 'osc_nodeops.ops.node_show')

FUNCTION_IMPORTS = {
    'events': (('osc_nodeops.ops.events',), {'import': 3},
               'the live block imports rich on a terminal only (it falls '
               'back to one line per event without it); rich is declared '
               'in requirements.txt now: import it at the top'),
}

# Where sleeping, sleep loops, retry loops and placement HTTP may live.
MECHANISM_HOMES = ('osc_nodeops.ops.cloud', 'osc_nodeops.ops.engine',
                   'osc_nodeops.ops.runtime', 'osc_nodeops.errors',
                   'osc_nodeops.privileged')
MECHANISMS_ELSEWHERE: dict = {}

# Functions with more than MAX_PARAMETERS parameters today (issue 22's
# design note counted 15 with eight or more): the number may only go down
# (a ratchet: the functions move during the splits, their names change).
MANY_PARAMETERS_TODAY = 26  # 27 before the splits

# The design note's other sizes: a function over 60 lines (12 today: a
# ratchet, as above) and a class over 300 (by class name, so that a move
# keeps it; Executor's 428 lines once its ladder, interrupts and polls
# became classes of their own).
MAX_FUNCTION_LINES = 60
LONG_FUNCTIONS_TODAY = 12  # 13 before the splits
MAX_CLASS_LINES = 300
LONG_CLASSES = {
    'Executor': (457, 'issue 22: the queue, the items in flight and their '
                      'outcomes; issue 24: the slot scheduler consulted at '
                      'each start (its logic in ops/engine/slots.py); '
                      'ops/engine/executor.py'),
}


class Module(object):
    """One module of the package: its dotted name, path and tree."""

    def __init__(self, path, root=ROOT):
        self.path = path
        rel = os.path.relpath(path, root)[:-len('.py')]
        parts = rel.split(os.sep)
        self.is_package = parts[-1] == '__init__'
        if self.is_package:
            parts.pop()
        self.name = '.'.join(parts)
        with open(path) as f:
            self.source = f.read()
        self.tree = ast.parse(self.source, path)

    @property
    def lines(self):
        return len(self.source.splitlines())

    def resolve(self, node):
        """The module an ``ImportFrom`` names (relative ones resolved)."""
        if not node.level:
            return node.module
        base = self.name.split('.')
        if not self.is_package:
            base.pop()
        base = base[:len(base) - (node.level - 1)]
        return '.'.join(base + ([node.module] if node.module else []))

    def imports(self, known):
        """(imported module, line, inside a function) for every import of
        an ``osc_nodeops`` module or of anything inside a function.  The
        imports under ``if typing.TYPE_CHECKING:`` do not run: left out."""
        found = []

        def visit(node, in_function):
            if isinstance(node, ast.If) and _is_type_checking(node.test):
                return
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef,
                                 ast.Lambda)):
                in_function = True
            if isinstance(node, ast.Import):
                for alias in node.names:
                    found.append((alias.name, node.lineno, in_function))
            elif isinstance(node, ast.ImportFrom):
                module = self.resolve(node)
                for alias in node.names:
                    sub = '%s.%s' % (module, alias.name)
                    found.append((sub if sub in known else module,
                                  node.lineno, in_function))
            for child in ast.iter_child_nodes(node):
                visit(child, in_function)

        visit(self.tree, False)
        return found


def _is_type_checking(test):
    return (isinstance(test, ast.Name) and test.id == 'TYPE_CHECKING') or (
        isinstance(test, ast.Attribute) and test.attr == 'TYPE_CHECKING')


def read_package(package=PACKAGE, root=ROOT):
    modules = {}
    for dirpath, dirnames, filenames in os.walk(package):
        dirnames.sort()
        for name in sorted(filenames):
            if name.endswith('.py'):
                module = Module(os.path.join(dirpath, name), root)
                modules[module.name] = module
    return modules


def _inside(name, prefix):
    return name == prefix or name.startswith(prefix + '.')


def import_graph(modules):
    """module -> {modules of the package it imports}: the module-level
    imports AND those inside functions (a cycle through a lazy import is
    still a cycle: it only moves the failure from import time to the
    call)."""
    graph = {}
    for name, module in modules.items():
        graph[name] = {target for target, _, _ in module.imports(modules)
                       if target in modules and target != name}
    return graph


def cycles(graph):
    """The strongly connected components of more than one module (Tarjan),
    each a sorted tuple."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def connect(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(tuple(sorted(component)))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return sorted(found)


def layer_of(name):
    """(rank, layer name, the prefix that placed it); rank 0 is the top.
    None for the empty package inits and for modules no layer names."""
    if name in PACKAGE_INITS:
        return None
    best = None
    for rank, (layer, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if _inside(name, prefix) and (
                    best is None or len(prefix) > len(best[2])):
                best = (rank, layer, prefix)
    return best


def runbook_unit(name):
    """``osc_nodeops.ops.drain`` for ``osc_nodeops.ops.drain.plan``."""
    return '.'.join(name.split('.')[:3])


def layer_violations(modules):
    found = []
    for name, module in sorted(modules.items()):
        mine = layer_of(name)
        if mine is None:
            if name not in PACKAGE_INITS:
                found.append('%s is in no layer: add it to LAYERS' % name)
            continue
        for target, line, _ in module.imports(modules):
            if target not in modules or target == name:
                continue
            theirs = layer_of(target)
            if theirs is None:
                continue
            where = '%s:%d imports %s' % (name, line, target)
            if theirs[0] < mine[0]:
                found.append('%s: up from %s to %s' % (
                    where, mine[1], theirs[1]))
            elif (theirs[0] == mine[0] == _RUNBOOKS and
                  runbook_unit(name) != runbook_unit(target) and
                  target != runbook_unit(target)):
                found.append('%s: another runbook\'s inside (use %s)' % (
                    where, runbook_unit(target)))
    return found


_RUNBOOKS = [layer for layer, _ in LAYERS].index('runbooks')


def unexcused(violations, excused=None):
    """The VIOLATIONS of ``layer_violations`` not named in UPWARD."""
    excused = UPWARD if excused is None else excused
    return [v for v in violations
            if not any(v.startswith('%s:' % importer) and
                       (' imports %s:' % imported) in v
                       for importer, imported in excused)]


def function_imports(modules):
    """ops module -> [(line, imported)] of the imports inside functions."""
    found = {}
    for name, module in sorted(modules.items()):
        if not _inside(name, 'osc_nodeops.ops'):
            continue
        for target, line, in_function in module.imports(modules):
            if in_function:
                found.setdefault(name, []).append((line, target))
    return found


def _calls_sleep(node):
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call):
            func = sub.func
            if (isinstance(func, ast.Name) and func.id == 'sleep') or (
                    isinstance(func, ast.Attribute) and
                    func.attr == 'sleep'):
                return True
    return False


def _goes_round_again(handler):
    """An except clause after which the loop goes on (it does not end in
    raise, return or break)."""
    return not isinstance(handler.body[-1], (ast.Raise, ast.Return,
                                             ast.Break))


def _is_retry_loop(node):
    """``for _ in range(...)`` (or ``while True``) whose body catches an
    error and goes round again: a retry written by hand.  (A ``while`` on
    a condition, as a heartbeat's ``while not stop.wait(t)``, is not one.)
    """
    if isinstance(node, ast.While):
        counted = isinstance(node.test, ast.Constant) and node.test.value
    else:
        counted = (isinstance(node.iter, ast.Call) and
                   isinstance(node.iter.func, ast.Name) and
                   node.iter.func.id == 'range')
    if not counted:
        return False
    for sub in ast.walk(node):
        if isinstance(sub, ast.Try) and any(
                _goes_round_again(h) for h in sub.handlers):
            return True
    return False


_PLACEMENT_VERBS = ('get', 'put', 'post', 'delete', 'patch', 'request')


def mechanisms(module):
    """[(kind, line)] of the mechanisms MODULE writes itself: a reference
    to ``time.sleep``, a loop that calls a sleep, a retry loop, an HTTP
    call on a placement client (``conn.placement.get``,
    ``placement.put``)."""
    found = []
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Attribute) and node.attr == 'sleep' and \
                isinstance(node.value, ast.Name) and node.value.id == 'time':
            found.append(('time.sleep', node.lineno))
        elif isinstance(node, ast.ImportFrom) and node.module == 'time' and \
                any(a.name == 'sleep' for a in node.names):
            found.append(('time.sleep', node.lineno))
        elif isinstance(node, (ast.For, ast.While)):
            if _calls_sleep(node):
                found.append(('sleep loop', node.lineno))
            if _is_retry_loop(node):
                found.append(('retry loop', node.lineno))
        elif isinstance(node, ast.Call) and \
                isinstance(node.func, ast.Attribute) and \
                node.func.attr in _PLACEMENT_VERBS:
            owner = node.func.value
            if (isinstance(owner, ast.Name) and owner.id == 'placement') or (
                    isinstance(owner, ast.Attribute) and
                    owner.attr == 'placement'):
                found.append(('placement HTTP', node.lineno))
    # A loop inside a loop that sleeps counts once, at the outer loop.
    return _outermost(found, module.tree)


def _outermost(found, tree):
    loops = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.For, ast.While)):
            for sub in ast.walk(node):
                if sub is not node and isinstance(sub, (ast.For, ast.While)):
                    loops.setdefault(sub.lineno, set()).add(node.lineno)
    lines = {(kind, line) for kind, line in found}
    return sorted((kind, line) for kind, line in lines
                  if not any((kind, outer) in lines
                             for outer in loops.get(line, ())))


def parameters(modules):
    """(module:qualname, count) of every function with more than
    MAX_PARAMETERS parameters (``self`` and ``cls`` not counted)."""
    found = []
    for name, module in sorted(modules.items()):
        for qualname, node in _functions(module.tree):
            args = node.args
            names = [a.arg for a in args.posonlyargs + args.args +
                     args.kwonlyargs]
            if names and names[0] in ('self', 'cls'):
                names = names[1:]
            count = len(names) + bool(args.vararg) + bool(args.kwarg)
            if count > MAX_PARAMETERS:
                found.append(('%s:%s' % (name, qualname), count))
    return found


def long_definitions(modules):
    """([(lines, module:qualname)] of the functions over MAX_FUNCTION_LINES,
    {class name: lines} of the classes over MAX_CLASS_LINES)."""
    functions, classes = [], {}
    for name, module in sorted(modules.items()):
        for qualname, node in _functions(module.tree):
            lines = node.end_lineno - node.lineno + 1
            if lines > MAX_FUNCTION_LINES:
                functions.append((lines, '%s:%s' % (name, qualname)))
        for node in ast.walk(module.tree):
            if isinstance(node, ast.ClassDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_CLASS_LINES:
                    classes[node.name] = max(lines, classes.get(node.name, 0))
    return sorted(functions, reverse=True), classes


_IGNORE = re.compile(r'#\s*type:\s*ignore(?P<rest>.*)')
_IGNORE_WITH_REASON = re.compile(r'^\[[a-z-]+(, *[a-z-]+)*\]\s+\S')


def bare_type_ignores(module):
    """Lines of MODULE with a ``# type: ignore`` that names no error code
    or gives no reason after it (``# type: ignore[code] why``)."""
    found = []
    with open(module.path, 'rb') as f:
        for tok in tokenize.tokenize(f.readline):
            if tok.type != tokenize.COMMENT:
                continue
            match = _IGNORE.search(tok.string)
            if match and not _IGNORE_WITH_REASON.match(
                    match.group('rest').strip()):
                found.append('%s:%d' % (module.name, tok.start[0]))
    return found


def blanket_mypy_settings(path):
    """What in the ``[mypy*]`` sections of setup.cfg at PATH switches the
    checker off for our code: ``ignore_errors``, ``disable_error_code``, a
    ``[mypy-osc_nodeops...]`` section, or a package left out of ``files``.
    (``ignore_missing_imports`` for a library without types is fine.)"""
    config = configparser.ConfigParser()
    config.read(path)
    found = []
    for section in config.sections():
        if not section.startswith('mypy'):
            continue
        if section.startswith('mypy-osc_nodeops'):
            found.append('[%s]' % section)
        for key in ('ignore_errors', 'disable_error_code'):
            if config.has_option(section, key):
                found.append('[%s] %s' % (section, key))
    files = [f.strip() for f in config.get('mypy', 'files',
                                          fallback='').replace(',', ' ')
             .split()]
    if files != ['osc_nodeops']:
        found.append('[mypy] files = %s (the whole package: osc_nodeops)'
                     % ', '.join(files))
    return found


MODULE_MAP = os.path.join(ROOT, 'doc', 'source', 'contributor',
                          'architecture.rst')
MAP_MARKER = '.. The module map'


def mapped_paths(rst):
    """The paths of the module map in RST: the ``code-block`` after the
    comment starting with MAP_MARKER, a tree indented two spaces a level
    (``ops/`` a package, ``drain.py  what it is`` a module)."""
    lines = rst.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(MAP_MARKER))
    block = next(i for i in range(start, len(lines))
                 if lines[i].startswith('.. code-block::'))
    paths, stack, base = set(), [], None
    for line in lines[block + 1:]:
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        if indent == 0:
            break
        base = indent if base is None else base
        level = (indent - base) // 2
        name = line.split()[0]
        stack[level:] = [name]
        paths.add(''.join(stack).rstrip('/'))
    return paths


def package_paths(package=PACKAGE):
    """Every module and package of PACKAGE as the map names it:
    ``osc_nodeops/ops/drain`` (a package), ``osc_nodeops/ops/lease.py``;
    the ``__init__.py`` files are their packages."""
    paths = set()
    for dirpath, dirnames, filenames in os.walk(package):
        dirnames[:] = [d for d in dirnames if d != '__pycache__']
        rel = os.path.relpath(dirpath, os.path.dirname(package))
        paths.add(rel.replace(os.sep, '/'))
        paths.update('%s/%s' % (rel.replace(os.sep, '/'), name)
                     for name in filenames
                     if name.endswith('.py') and name != '__init__.py')
    return paths


def _functions(tree, prefix=''):
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            qualname = prefix + node.name
            yield qualname, node
            yield from _functions(node, qualname + '.')
        elif isinstance(node, ast.ClassDef):
            yield from _functions(node, prefix + node.name + '.')


def group_of(name, table):
    for group, (prefixes, _, _) in table.items():
        if any(_inside(name, prefix) for prefix in prefixes):
            return group
    return name


def over_allowance(found, table):
    """FOUND: module -> {kind: count}; TABLE: group -> (prefixes, {kind:
    count}, why).  The lines of each group (or module in no group) whose
    count of a kind is above its allowance."""
    totals = {}
    for name, kinds in found.items():
        group = group_of(name, table)
        for kind, count in kinds.items():
            totals.setdefault(group, collections.Counter())[kind] += count
    out = []
    for group, kinds in sorted(totals.items()):
        allowance = table.get(group, ((), {}, None))[1]
        for kind, count in sorted(kinds.items()):
            if count > allowance.get(kind, 0):
                out.append('%s: %d %s (allowed %d)' % (
                    group, count, kind, allowance.get(kind, 0)))
    return out


class TestLayoutRules(testtools.TestCase):

    _modules = None

    def setUp(self):
        super(TestLayoutRules, self).setUp()
        if TestLayoutRules._modules is None:  # read once per process
            TestLayoutRules._modules = read_package()
        self.modules = TestLayoutRules._modules
        self.assertGreater(len(self.modules), 40)  # it did read the package

    def test_no_module_over_the_size_limit(self):
        sizes = sorted(((m.lines, name) for name, m in self.modules.items()),
                       reverse=True)
        self.addDetail('largest modules', content.text_content('\n'.join(
            '%5d %s' % size for size in sizes[:15])))
        over = ['%s: %d lines (limit %d%s)' % (
            name, lines, OVERSIZED.get(name, (MAX_MODULE_LINES,))[0],
            '; ' + OVERSIZED[name][1] if name in OVERSIZED else '')
            for lines, name in sizes
            if lines > max(MAX_MODULE_LINES,
                           OVERSIZED.get(name, (0,))[0])]
        self.assertEqual([], over)

    def test_no_import_cycle(self):
        found = [c for c in cycles(import_graph(self.modules))
                 if frozenset(c) not in CYCLES]
        self.assertEqual([], found)

    def test_imports_go_down_only(self):
        self.assertEqual([], unexcused(layer_violations(self.modules)))

    def test_no_function_level_imports_in_ops(self):
        found = function_imports(self.modules)
        self.addDetail('imports inside functions in ops', content.text_content(
            '\n'.join('%s: %s' % (name, ', '.join(
                '%d %s' % item for item in v))
                      for name, v in sorted(found.items()))))
        self.assertEqual([], over_allowance(
            {name: {'import': len(v)} for name, v in found.items()},
            FUNCTION_IMPORTS))

    def test_mechanisms_only_in_their_homes(self):
        found = {}
        for name, module in sorted(self.modules.items()):
            if any(_inside(name, home) for home in MECHANISM_HOMES):
                continue
            for kind, line in mechanisms(module):
                found.setdefault(name, collections.Counter())[kind] += 1
        self.addDetail('mechanisms outside their homes', content.text_content(
            '\n'.join('%s: %s' % (name, dict(kinds))
                      for name, kinds in sorted(found.items()))))
        self.assertEqual([], over_allowance(found, MECHANISMS_ELSEWHERE))

    def test_parameter_count(self):
        found = parameters(self.modules)
        self.addDetail('functions over %d parameters' % MAX_PARAMETERS,
                       content.text_content('\n'.join(
                           '%2d %s' % (count, name)
                           for name, count in found)))
        self.assertLessEqual(len(found), MANY_PARAMETERS_TODAY,
                             'more functions over %d parameters than the '
                             '%d of today: %s' % (
                                 MAX_PARAMETERS, MANY_PARAMETERS_TODAY,
                                 found))

    def test_function_length(self):
        functions, classes = long_definitions(self.modules)
        self.addDetail('functions over %d lines' % MAX_FUNCTION_LINES,
                       content.text_content('\n'.join(
                           '%3d %s' % item for item in functions)))
        self.assertLessEqual(len(functions), LONG_FUNCTIONS_TODAY,
                             'more functions over %d lines than the %d of '
                             'today: %s' % (MAX_FUNCTION_LINES,
                                            LONG_FUNCTIONS_TODAY, functions))

    def test_class_length(self):
        _, classes = long_definitions(self.modules)
        self.assertEqual([], ['class %s: %d lines (allowed %d)' % (
            name, lines, LONG_CLASSES.get(name, (MAX_CLASS_LINES,))[0])
            for name, lines in sorted(classes.items())
            if lines > LONG_CLASSES.get(name, (MAX_CLASS_LINES,))[0]])

    def test_the_module_map_names_every_module(self):
        with open(MODULE_MAP) as f:
            mapped = mapped_paths(f.read())
        actual = package_paths()
        self.assertEqual(
            {'not in the map of architecture.rst': [],
             'in the map, not in the package': []},
            {'not in the map of architecture.rst': sorted(actual - mapped),
             'in the map, not in the package': sorted(mapped - actual)})

    def test_type_check_has_no_blanket_ignore(self):
        found = blanket_mypy_settings(os.path.join(ROOT, 'setup.cfg'))
        for module in self.modules.values():
            found += bare_type_ignores(module)
        self.assertEqual([], found)


class TestTheRulesSeeEachForm(testtools.TestCase):
    """Each checker, on a small package written for the test: it finds
    what it must find (so that a rule test passing means something)."""

    def package(self, files):
        root = self.useFixture(fixtures.TempDir()).path
        for rel, text in files.items():
            path = os.path.join(root, 'osc_nodeops', *rel.split('/'))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, 'w') as f:
                f.write(text)
        return read_package(os.path.join(root, 'osc_nodeops'), root)

    def test_cycles_through_each_import_form(self):
        modules = self.package({
            '__init__.py': '',
            'ops/__init__.py': '',
            'ops/a.py': 'from osc_nodeops.ops import b\n',
            'ops/b.py': 'def f():\n    from . import a\n',
            'ops/c.py': 'import osc_nodeops.ops.d\n',
            'ops/d.py': 'from osc_nodeops.ops.c import X\n',
            'ops/e.py': 'import typing\nif typing.TYPE_CHECKING:\n'
                        '    from osc_nodeops.ops import f\n',
            'ops/f.py': 'from osc_nodeops.ops import e\n',
        })
        self.assertEqual([('osc_nodeops.ops.a', 'osc_nodeops.ops.b'),
                          ('osc_nodeops.ops.c', 'osc_nodeops.ops.d')],
                         cycles(import_graph(modules)))

    def test_layers(self):
        modules = self.package({
            '__init__.py': '',
            'errors.py': 'from osc_nodeops import timeutil\n',
            'timeutil.py': '',
            'safefile.py': 'from osc_nodeops.ops import engine\n',
            'ops/__init__.py': '',
            'ops/engine.py': 'from osc_nodeops.ops import drain\n',
            'ops/drain/__init__.py': 'from . import plan\n',
            'ops/drain/plan.py': 'from osc_nodeops.ops import engine\n',
            'ops/maintain.py': 'from osc_nodeops.ops import drain\n'
                               'from osc_nodeops.ops.drain import plan\n'
                               'from osc_nodeops import v1\n',
            'ops/stray.py': '',
            'v1/__init__.py': '',
            'loose.py': '',
        })
        self.assertEqual([
            'osc_nodeops.loose is in no layer: add it to LAYERS',
            'osc_nodeops.ops.engine:1 imports osc_nodeops.ops.drain: up '
            'from engine to runbooks',
            'osc_nodeops.ops.maintain:2 imports osc_nodeops.ops.drain.plan: '
            'another runbook\'s inside (use osc_nodeops.ops.drain)',
            'osc_nodeops.ops.maintain:3 imports osc_nodeops.v1: up from '
            'runbooks to v1',
            'osc_nodeops.safefile:1 imports osc_nodeops.ops.engine: up from '
            'files to engine',
        ], layer_violations(modules))
        self.assertEqual(
            ['osc_nodeops.loose is in no layer: add it to LAYERS'],
            unexcused(layer_violations(modules), {
                ('osc_nodeops.ops.engine', 'osc_nodeops.ops.drain'): 'why',
                ('osc_nodeops.ops.maintain', 'osc_nodeops.ops.drain.plan'):
                    'why',
                ('osc_nodeops.ops.maintain', 'osc_nodeops.v1'): 'why',
                ('osc_nodeops.safefile', 'osc_nodeops.ops.engine'): 'why'}))

    def test_function_imports_only_in_ops(self):
        modules = self.package({
            '__init__.py': '',
            'ops/__init__.py': '',
            'errors.py': '',
            'ops/a.py': 'import os\n\ndef f():\n    import json\n'
                        '    return lambda: __import__("x")\n\n'
                        'class C:\n    def m(self):\n'
                        '        from osc_nodeops import errors\n',
            'v1/__init__.py': '',
            'v1/cmd.py': 'def take_action():\n'
                         '    from osc_nodeops.ops import a\n',
        })
        self.assertEqual(
            {'osc_nodeops.ops.a': [(4, 'json'), (9, 'osc_nodeops.errors')]},
            function_imports(modules))

    def test_mechanisms(self):
        modules = self.package({
            '__init__.py': '',
            'm.py': '\n'.join((
                'import time',
                'from time import sleep',
                'def wait(ok, sleep=time.sleep):',
                '    while not ok():',
                '        for _ in range(3):',
                '            sleep(1)',
                'def retry(fn):',
                '    for n in range(5):',
                '        try:',
                '            return fn()',
                '        except OSError:',
                '            pass',
                'def no_retry(fn, items):',
                '    for item in items:',
                '        try:',
                '            fn(item)',
                '        except OSError:',
                '            continue',
                '    for n in range(5):',
                '        try:',
                '            fn(n)',
                '        except OSError:',
                '            raise',
                'def usage(conn, placement):',
                '    conn.placement.get("/resource_providers")',
                '    placement.put("/allocations/x", json={})',
                '    conn.compute.get("/servers")',
                'def beat(stop, renew):',
                '    while not stop.wait(30):',
                '        try:',
                '            renew()',
                '        except OSError:',
                '            pass',
                'def poll(look):',
                '    while True:',
                '        try:',
                '            return look()',
                '        except OSError:',
                '            pass',
            )),
        })
        self.assertEqual([('placement HTTP', 25), ('placement HTTP', 26),
                          ('retry loop', 8), ('retry loop', 35),
                          ('sleep loop', 4),
                          ('time.sleep', 2), ('time.sleep', 3)],
                         mechanisms(modules['osc_nodeops.m']))

    def test_parameters(self):
        modules = self.package({
            '__init__.py': '',
            'm.py': '\n'.join((
                'def six(a, b, c, d, e, f):',
                '    pass',
                'def seven(a, b, c, d, e, f, *, g=1):',
                '    pass',
                'class C:',
                '    def m(self, a, b, c, d, e, *args, **kw):',
                '        def inner(a, b, c, d, e, f, g, h):',
                '            pass',
            )),
        })
        self.assertEqual([('osc_nodeops.m:seven', 7),
                          ('osc_nodeops.m:C.m', 7),
                          ('osc_nodeops.m:C.m.inner', 8)],
                         parameters(modules))

    def test_long_definitions(self):
        def body(n, indent):
            return ''.join('%sx = %d\n' % (indent, i) for i in range(n))
        modules = self.package({
            '__init__.py': '',
            # 60 lines (at the limit), then a method of 61 lines
            'm.py': 'def short():\n' + body(MAX_FUNCTION_LINES - 1, '    ') +
                    'class C:\n    def long(self):\n' +
                    body(MAX_FUNCTION_LINES, '        ') +
                    'class D:\n' + body(MAX_CLASS_LINES, '    '),
        })
        functions, classes = long_definitions(modules)
        self.assertEqual([(MAX_FUNCTION_LINES + 1, 'osc_nodeops.m:C.long')],
                         functions)
        self.assertEqual({'D': MAX_CLASS_LINES + 1}, classes)

    def test_type_ignores_and_mypy_settings(self):
        modules = self.package({
            '__init__.py': '',
            'm.py': 'a = 1  # type: ignore\n'
                    'b = 2  # type: ignore[attr-defined]\n'
                    'c = 3  # type: ignore[attr-defined] cliff has no stub\n'
                    's = "# type: ignore"\n',
        })
        self.assertEqual(['osc_nodeops.m:1', 'osc_nodeops.m:2'],
                         bare_type_ignores(modules['osc_nodeops.m']))
        cfg = os.path.join(self.useFixture(fixtures.TempDir()).path, 'cfg')
        with open(cfg, 'w') as f:
            f.write('[mypy]\nfiles = osc_nodeops/ops, osc_nodeops/db\n'
                    'disable_error_code = misc\n'
                    '[mypy-libvirt]\nignore_missing_imports = True\n'
                    '[mypy-osc_nodeops.v1.*]\nignore_errors = True\n')
        self.assertEqual(
            ['[mypy] disable_error_code', '[mypy-osc_nodeops.v1.*]',
             '[mypy-osc_nodeops.v1.*] ignore_errors',
             '[mypy] files = osc_nodeops/ops, osc_nodeops/db (the whole '
             'package: osc_nodeops)'], blanket_mypy_settings(cfg))

    def test_module_map(self):
        rst = '\n'.join((
            'Text', '', '.. The module map, checked', '',
            '.. code-block:: text', '',
            '   osc_nodeops/',
            '     errors.py       the errors',
            '     ops/            the runbooks',
            '       drain/',
            '         plan.py     filters',
            '       lease.py',
            '     v1/',
            '       base.py', '',
            'After the block.', '   not.py'))
        self.assertEqual({'osc_nodeops', 'osc_nodeops/errors.py',
                          'osc_nodeops/ops', 'osc_nodeops/ops/drain',
                          'osc_nodeops/ops/drain/plan.py',
                          'osc_nodeops/ops/lease.py', 'osc_nodeops/v1',
                          'osc_nodeops/v1/base.py'}, mapped_paths(rst))

    def test_allowances_count_per_group(self):
        table = {'g': (('p.a', 'p.b'), {'sleep loop': 2, 'time.sleep': 1},
                       'why')}
        self.assertEqual(
            ['g: 3 sleep loop (allowed 2)', 'p.c: 1 retry loop (allowed 0)'],
            over_allowance(
                {'p.a.x': {'sleep loop': 2, 'time.sleep': 1},
                 'p.b': {'sleep loop': 1}, 'p.c': {'retry loop': 1}},
                table))
        self.assertEqual([], over_allowance(
            {'p.a.x': {'sleep loop': 1}, 'p.b.y': {'sleep loop': 1}}, table))
