import json
import os

import fixtures
import testtools

from osc_nodeops.db import journal as db_journal
from osc_nodeops import durable
from osc_nodeops.ops.inspect_disk import journal as inspect_journal


class TestWriteJson(testtools.TestCase):
    """One writer for the DB move journal and the inspect-disk journal."""

    def setUp(self):
        super().setUp()
        self.d = self.useFixture(fixtures.TempDir()).path
        self.victim = os.path.join(self.d, 'victim')
        with open(self.victim, 'w') as f:
            f.write('precious\n')

    def plant(self, path):
        # A local user's links at every temporary name we might use.
        for tmp in ('%s.tmp' % path, '%s.tmp.%d' % (path, os.getpid())):
            os.symlink(self.victim, tmp)

    def assertVictimIntact(self):
        with open(self.victim) as f:
            self.assertEqual('precious\n', f.read())

    def test_planted_link_at_the_temporary_name_is_not_written_through(
            self):
        path = os.path.join(self.d, 'j.json')
        self.plant(path)
        durable.write_json(path, {'a': 1})
        self.assertVictimIntact()
        with open(path) as f:
            self.assertEqual({'a': 1}, json.load(f))
        self.assertFalse(os.path.islink(path))
        self.assertEqual(0o600, os.stat(path).st_mode & 0o777)

    def test_db_move_journal(self):
        path = os.path.join(self.d, 'db-move.json')
        self.plant(path)
        db_journal.write(path, {'state': 'x'})
        self.assertVictimIntact()
        with open(path) as f:
            self.assertEqual('x', json.load(f)['state'])

    def test_inspect_journal(self):
        j = inspect_journal.Journal(self.d, 'u1')
        self.plant(j.path)
        j.record(server_id='u1')
        self.assertVictimIntact()
        self.assertEqual('u1', j.load()['server_id'])
