"""The layer rule of ``osc_nodeops/privileged/``, checked on the source.

``privileged/`` holds every root-only local step.  So, in every module under
``osc_nodeops/`` outside ``osc_nodeops/privileged/`` (read with ``ast``, not
imported), this test fails on:

* an import of ``subprocess``, ``ctypes`` (a way to call mount(2) and
  friends) or ``libvirt`` (``import X``, ``import X.y``, ``from X import``);
* a call, or an import by name, of a process, kill or root-side file
  function: ``os.kill``, ``os.killpg``, ``os.system``, ``os.popen``,
  ``os.fork``, ``os.forkpty``, ``os.exec*``, ``os.spawn*``,
  ``os.posix_spawn*``, ``os.rmdir``, ``os.removedirs``, ``os.chroot``,
  ``os.unshare``, ``shutil.copy``, ``copy2``, ``copyfile``, ``copyfileobj``,
  ``copytree``, ``copystat``, ``copymode``, ``move``, ``rmtree``
  (attribute calls on the modules ``os`` and ``shutil`` as imported);
* a list or tuple literal whose first element is the name of a root-only
  command (``mount``, ``umount``, ``losetup``, ``qemu-nbd``, ``nbdfuse``,
  ``sfdisk``, ``blkid``, ``systemctl``, ``initctl``, ``unshare``,
  ``chroot``): an argv built outside
  ``privileged/``.

And ``osc_nodeops/v1/`` (cliff classes) imports nothing from
``osc_nodeops.privileged``: it calls ``ops``, which calls ``privileged``.
"""

import ast
import os

import testtools

import osc_nodeops

PACKAGE = os.path.dirname(os.path.abspath(osc_nodeops.__file__))
PRIVILEGED = os.path.join(PACKAGE, 'privileged')

MODULES = ('subprocess', 'ctypes', 'libvirt')
OS_CALLS = ('kill', 'killpg', 'system', 'popen', 'fork', 'forkpty',
            'rmdir', 'removedirs', 'chroot', 'unshare')
OS_PREFIXES = ('exec', 'spawn', 'posix_spawn')
SHUTIL_CALLS = ('copy', 'copy2', 'copyfile', 'copyfileobj', 'copytree',
                'copystat', 'copymode', 'move', 'rmtree')
COMMANDS = ('mount', 'umount', 'losetup', 'qemu-nbd', 'nbdfuse', 'sfdisk',
            'blkid', 'systemctl', 'initctl', 'unshare', 'chroot')


def _forbidden(module, name):
    if module == 'os':
        return name in OS_CALLS or name.startswith(OS_PREFIXES)
    if module == 'shutil':
        return name in SHUTIL_CALLS
    return False


def violations(path, rel):
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    found = []
    v1 = rel.startswith('v1' + os.sep)
    for node in ast.walk(tree):
        where = '%s:%d' % (rel, getattr(node, 'lineno', 0))
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split('.')[0] in MODULES:
                    found.append('%s imports %s' % (where, alias.name))
                if v1 and alias.name.startswith('osc_nodeops.privileged'):
                    found.append('%s: v1 imports %s' % (where, alias.name))
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ''
            if mod.split('.')[0] in MODULES:
                found.append('%s imports from %s' % (where, mod))
            for alias in node.names:
                if _forbidden(mod, alias.name):
                    found.append('%s imports %s.%s' % (where, mod,
                                                       alias.name))
            if v1 and (mod.startswith('osc_nodeops.privileged') or (
                    mod == 'osc_nodeops' and
                    any(a.name == 'privileged' for a in node.names))):
                found.append('%s: v1 imports from %s' % (where, mod))
        elif isinstance(node, ast.Attribute) and \
                isinstance(node.value, ast.Name) and \
                _forbidden(node.value.id, node.attr):
            found.append('%s uses %s.%s' % (where, node.value.id, node.attr))
        elif isinstance(node, (ast.List, ast.Tuple)) and node.elts and \
                isinstance(node.elts[0], ast.Constant) and \
                node.elts[0].value in COMMANDS and len(node.elts) > 1:
            found.append('%s builds an argv for %s' % (
                where, node.elts[0].value))
    return found


class TestPrivilegedLayer(testtools.TestCase):

    def modules(self):
        for dirpath, dirnames, filenames in os.walk(PACKAGE):
            if dirpath.startswith(PRIVILEGED):
                continue
            for name in sorted(filenames):
                if name.endswith('.py'):
                    path = os.path.join(dirpath, name)
                    yield path, os.path.relpath(path, PACKAGE)

    def test_root_only_steps_only_in_privileged(self):
        found = []
        count = 0
        for path, rel in self.modules():
            count += 1
            found += violations(path, rel)
        self.assertGreater(count, 10)  # it did read the package
        self.assertEqual([], found)

    def test_the_checker_sees_each_kind(self):
        import tempfile
        bad = ('import subprocess\nimport os, shutil\n'
               'from os import killpg\n'
               'os.kill(1, 9)\nshutil.copy2("a", "b")\nos.rmdir("d")\n'
               'argv = ["umount", "/mnt"]\n'
               'from osc_nodeops.privileged import proc\n')
        with tempfile.NamedTemporaryFile('w', suffix='.py') as f:
            f.write(bad)
            f.flush()
            found = violations(f.name, os.path.join('v1', 'x.py'))
        self.assertEqual(7, len(found), found)
