"""Issue 21.2: root opens nothing by a path another user can redirect.

Each test plants what a local user could (a symbolic link, a hard link, a
file of their own, a link on the way) and checks that the file root would
have appended to, trusted or replaced is untouched.  The tests that need a
second user run as root (chown to ``nobody``) and are skipped otherwise.
"""

import json
import os
import stat

import fixtures
import testtools

from osc_nodeops.db import errors as db_errors
from osc_nodeops.db import journal as db_journal
from osc_nodeops import durable
from osc_nodeops import errors
from osc_nodeops.ops import events
from osc_nodeops.ops import maintain
from osc_nodeops import safefile

NOBODY = 65534


def root_only(test):
    return testtools.skipUnless(os.geteuid() == 0, 'needs root (chown)')(
        test)


class _Planted(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.d = self.useFixture(fixtures.TempDir()).path
        os.chmod(self.d, 0o755)
        self.victim = os.path.join(self.d, 'victim')  # root's own file
        with open(self.victim, 'w') as f:
            f.write('precious\n')
        os.chmod(self.victim, 0o600)

    def assertVictimIntact(self):
        with open(self.victim) as f:
            self.assertEqual('precious\n', f.read())

    def shared(self):
        """A sticky world-writable directory owned by another user, as
        /tmp/x made by a local user."""
        shared = os.path.join(self.d, 'shared')
        os.mkdir(shared)
        os.chmod(shared, 0o1777)
        os.chown(shared, NOBODY, NOBODY)
        return shared

    def plant_link(self, where, name, target):
        path = os.path.join(where, name)
        os.symlink(target, path)
        os.chown(path, NOBODY, NOBODY, follow_symlinks=False)
        return path


class TestEventsFile(_Planted):

    def assertRefused(self, path):
        exc = self.assertRaises(errors.UsageError, events.EventLog, path)
        self.assertEqual(errors.EXIT_USAGE, exc.exit_status)
        self.assertNotIn('\n', str(exc))
        self.assertVictimIntact()
        return str(exc)

    def test_symlink_at_the_name(self):
        path = os.path.join(self.d, 'events.jsonl')
        os.symlink(self.victim, path)
        self.assertIn('symbolic link', self.assertRefused(path))

    def test_dangling_symlink_creates_nothing(self):
        path = os.path.join(self.d, 'events.jsonl')
        os.symlink(os.path.join(self.d, 'bashrc'), path)
        self.assertRaises(errors.UsageError, events.EventLog, path)
        self.assertFalse(os.path.exists(os.path.join(self.d, 'bashrc')))

    @root_only
    def test_link_planted_in_a_shared_sticky_directory(self):
        link = self.plant_link(self.shared(), 'events.jsonl', self.victim)
        self.assertRefused(link)

    def test_hard_link(self):
        path = os.path.join(self.d, 'events.jsonl')
        os.link(self.victim, path)
        self.assertIn('2 hard links', self.assertRefused(path))
        os.unlink(path)
        self.assertVictimIntact()

    @root_only
    def test_a_file_of_another_user(self):
        path = os.path.join(self.shared(), 'events.jsonl')
        with open(path, 'w') as f:
            f.write('theirs\n')
        os.chown(path, NOBODY, NOBODY)
        self.assertIn('owned by uid %d' % NOBODY, self.assertRefused(path))
        with open(path) as f:
            self.assertEqual('theirs\n', f.read())

    def test_group_writable(self):
        path = os.path.join(self.d, 'events.jsonl')
        with open(path, 'w'):
            pass
        os.chmod(path, 0o620)
        self.assertIn('writable', self.assertRefused(path))
        self.assertEqual(0, os.stat(path).st_size)

    def test_fifo_does_not_hang(self):
        # No reader: the non-blocking open fails (ENXIO) instead of
        # waiting for ever; with a reader, fstat says it is no file.
        path = os.path.join(self.d, 'events.jsonl')
        os.mkfifo(path, 0o600)
        self.assertRefused(path)
        rfd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self.addCleanup(os.close, rfd)
        self.assertIn('not a regular file', self.assertRefused(path))

    @root_only
    def test_link_on_the_way_in_a_directory_another_user_owns(self):
        # /tmp/x/sub/events.jsonl where sub is the other user's link to
        # root's directory: the last component is no link, a parent is.
        self.plant_link(self.shared(), 'sub', self.d)
        path = os.path.join(self.d, 'shared', 'sub', 'victim')
        self.assertIn('symbolic link sub', self.assertRefused(path))

    def test_link_on_the_way_in_our_own_directory_is_followed(self):
        real = os.path.join(self.d, 'real')
        os.mkdir(real, 0o700)
        os.symlink('real', os.path.join(self.d, 'alias'))
        log = events.EventLog(os.path.join(self.d, 'alias', 'ev.jsonl'))
        log('x')
        log.close()
        with open(os.path.join(real, 'ev.jsonl')) as f:
            self.assertEqual('x', json.loads(f.read())['message'])

    def test_new_file_is_0600_and_appended(self):
        path = os.path.join(self.d, 'events.jsonl')
        for n in range(2):
            log = events.EventLog(path)
            log('line %d' % n)
            log.close()
        self.assertEqual(0o600, stat.S_IMODE(os.stat(path).st_mode))
        with open(path) as f:
            self.assertEqual(2, len(f.read().splitlines()))


class TestMaintainState(_Planted):

    def test_symlink_to_a_file_of_root_is_not_trusted_nor_replaced(self):
        path = os.path.join(self.d, 'state.json')
        with open(self.victim, 'w') as f:
            json.dump({'hosts': {'c01': {'exec': 'x'}}}, f)
        os.symlink(self.victim, path)
        self.assertRaises(errors.UsageError, maintain.State, path)

    def test_a_file_without_our_marker_is_refused_not_replaced(self):
        path = os.path.join(self.d, 'state.json')
        with open(path, 'w') as f:
            f.write('{"hosts": {}, "something": "else"}\n')
        exc = self.assertRaises(errors.UsageError, maintain.State, path)
        self.assertIn('not a state file', str(exc))
        with open(path) as f:
            self.assertIn('something', f.read())

    @root_only
    def test_a_state_file_of_another_user(self):
        path = os.path.join(self.shared(), 'state.json')
        state = maintain.State(path)
        state.mark('c01', 'drain')
        os.chown(path, NOBODY, NOBODY)
        self.assertRaises(errors.UsageError, maintain.State, path)

    def test_ours_round_trips(self):
        path = os.path.join(self.d, 'state.json')
        state = maintain.State(path)
        state.mark('c01', 'drain')
        self.assertTrue(maintain.State(path).done('c01', 'drain'))
        self.assertEqual(0o600, stat.S_IMODE(os.stat(path).st_mode))


class TestDBJournal(_Planted):

    def test_undo_journal_behind_a_symlink_is_refused(self):
        good = os.path.join(self.d, 'db-move-good.json')
        db_journal.create(good, {'nova': [], 'neutron': [], 'old_host': 'a',
                                 'new_host': 'b', 'state': 'done'})
        link = os.path.join(self.d, 'db-move-link.json')
        os.symlink(good, link)
        self.assertRaises(db_errors.DBConfigError, db_journal.read, link)
        self.assertEqual('a', db_journal.read(good)['old_host'])

    @root_only
    def test_journal_of_another_user_is_not_trusted(self):
        path = os.path.join(self.shared(), 'db-move-x.json')
        db_journal.create(path, {'nova': [], 'neutron': [], 'old_host': 'a',
                                 'new_host': 'b', 'state': 'done'})
        os.chown(path, NOBODY, NOBODY)
        exc = self.assertRaises(db_errors.DBConfigError, db_journal.read,
                                path)
        self.assertIn('owned by uid', str(exc))

    def test_world_writable_journal_is_not_trusted(self):
        path = os.path.join(self.d, 'db-move-x.json')
        db_journal.create(path, {'nova': [], 'neutron': [], 'old_host': 'a',
                                 'new_host': 'b', 'state': 'done'})
        os.chmod(path, 0o666)
        self.assertRaises(db_errors.DBConfigError, db_journal.read, path)

    @root_only
    def test_journal_written_through_a_planted_parent_link(self):
        self.plant_link(self.shared(), 'sub', self.d)
        path = os.path.join(self.d, 'shared', 'sub', 'victim')
        self.assertRaises(safefile.Unsafe, durable.write_json, path,
                          {'x': 1})
        self.assertVictimIntact()
