"""inspect-disk's --audit-log is written by root: a link another user
planted there is refused, the target untouched (issue 21 item 2: every
file root writes goes through osc_nodeops.safefile)."""

import errno
import json
import os
import shutil
import tempfile

import testtools

from osc_nodeops.ops.inspect_disk import session


class TestAuditLog(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.dir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.dir)

    def test_appends_a_line_to_a_new_private_file(self):
        path = os.path.join(self.dir, 'audit.log')
        session.audit(path, {'event': 'started'})
        session.audit(path, {'event': 'finished'})
        with open(path) as f:
            lines = [json.loads(ln) for ln in f]
        self.assertEqual(['started', 'finished'], [r['event'] for r in lines])
        self.assertEqual(0o600, os.stat(path).st_mode & 0o777)

    def test_a_planted_link_is_refused_and_its_target_untouched(self):
        target = os.path.join(self.dir, 'victim')
        with open(target, 'w') as f:
            f.write('unchanged\n')
        path = os.path.join(self.dir, 'audit.log')
        os.symlink(target, path)
        exc = self.assertRaises(OSError, session.audit, path, {'x': 1})
        self.assertEqual(errno.EPERM, exc.errno)
        self.assertIn('--audit-log', str(exc))
        with open(target) as f:
            self.assertEqual('unchanged\n', f.read())
