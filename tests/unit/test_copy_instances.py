import os

import fixtures
import testtools

from osc_nodeops.ops import copy_instances as ops

UUID = '0f3a9c52-1b8e-4c31-9d5e-6a1f2e3d4c5b'


class _Tree(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.src = self.useFixture(fixtures.TempDir()).path
        self.dst = self.useFixture(fixtures.TempDir()).path
        self.write('instance-0000002a/disk', b'qcow2 data')
        self.write('instance-0000002a/console.log', b'boot\n')
        self.write(UUID + '/disk', b'newer layout')
        self.write('_base/abc123', b'base image')
        self.write('locks/nova-x', b'')
        os.symlink('../_base/abc123',
                   os.path.join(self.src, UUID, 'backing'))

    def write(self, rel, data, root=None):
        path = os.path.join(root or self.src, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'wb') as f:
            f.write(data)
        return path

    def rows(self, results):
        return {r.entry: r for r in results}


class TestCopyInstances(_Tree):

    def test_dry_run_writes_nothing(self):
        res = self.rows(ops.copy_instances(self.src, self.dst, dry_run=True))
        self.assertEqual('planned', res['instance-0000002a'].result)
        self.assertEqual(2, res['instance-0000002a'].files)
        self.assertEqual('skipped', res['locks'].result)
        self.assertEqual([], os.listdir(self.dst))

    def test_copies_and_verifies(self):
        res = self.rows(ops.copy_instances(self.src, self.dst,
                                           dry_run=False))
        self.assertEqual({'instance-0000002a': 'copied', UUID: 'copied',
                          '_base': 'copied', 'locks': 'skipped'},
                         {k: v.result for k, v in res.items()})
        with open(os.path.join(self.dst, UUID, 'disk'), 'rb') as f:
            self.assertEqual(b'newer layout', f.read())
        self.assertEqual('../_base/abc123',
                         os.readlink(os.path.join(self.dst, UUID,
                                                  'backing')))
        self.assertFalse(os.path.exists(os.path.join(self.dst, 'locks')))
        leftovers = [n for _, _, files in os.walk(self.dst) for n in files
                     if 'nodeops-partial' in n]
        self.assertEqual([], leftovers)
        # Again: all there, identical, nothing copied.
        res = self.rows(ops.copy_instances(self.src, self.dst,
                                           dry_run=False))
        self.assertEqual('already there', res['_base'].result)

    def test_conflict_is_reported_not_replaced(self):
        self.write('_base/abc123', b'other content!', root=self.dst)
        res = self.rows(ops.copy_instances(self.src, self.dst,
                                           dry_run=True))
        self.assertEqual('conflict', res['_base'].result)
        res = self.rows(ops.copy_instances(self.src, self.dst,
                                           dry_run=False))
        self.assertEqual('conflict', res['_base'].result)
        self.assertIn('_base/abc123', res['_base'].message())
        with open(os.path.join(self.dst, '_base/abc123'), 'rb') as f:
            self.assertEqual(b'other content!', f.read())
        self.assertEqual('copied', res[UUID].result)

    def test_preserves_owner_mode_times(self):
        if os.geteuid() != 0:
            self.skipTest('chown needs root')
        path = os.path.join(self.src, '_base/abc123')
        os.chown(path, 4242, 4343)
        os.chmod(path, 0o644)
        os.utime(path, (1_600_000_000, 1_600_000_000))
        ops.copy_instances(self.src, self.dst, dry_run=False)
        st = os.stat(os.path.join(self.dst, '_base/abc123'))
        self.assertEqual((4242, 4343, 0o644, 1_600_000_000),
                         (st.st_uid, st.st_gid, st.st_mode & 0o7777,
                          int(st.st_mtime)))

    def test_sparse_stays_sparse(self):
        path = os.path.join(self.src, '_base/sparse')
        with open(path, 'wb') as f:
            f.truncate(64 << 20)
            f.seek(32 << 20)
            f.write(b'x')
        ops.copy_instances(self.src, self.dst, dry_run=False,
                           only=['_base'])
        st = os.stat(os.path.join(self.dst, '_base/sparse'))
        self.assertEqual(64 << 20, st.st_size)
        self.assertLess(st.st_blocks * 512, 4 << 20)
        self.assertEqual(ops.sha256_file(path), ops.sha256_file(
            os.path.join(self.dst, '_base/sparse')))

    def test_checksum_mismatch_fails(self):
        self.useFixture(fixtures.MockPatchObject(
            ops.priv, 'sha256_fd', return_value='bad'))
        res = self.rows(ops.copy_instances(self.src, self.dst,
                                           dry_run=False, only=['_base']))
        self.assertEqual('failed', res['_base'].result)
        self.assertIn('checksum', res['_base'].message())
        self.assertFalse(os.path.exists(os.path.join(self.dst,
                                                     '_base/abc123')))

    def test_bad_input(self):
        self.assertRaises(ops.CopyError, ops.copy_instances, self.src,
                          self.src)
        self.assertRaises(ops.CopyError, ops.copy_instances, self.src,
                          os.path.join(self.src, 'instance-0000002a'))
        self.assertRaises(ops.CopyError, ops.copy_instances, self.src,
                          os.path.join(self.dst, 'nope'))
        err = self.assertRaises(ops.CopyError, ops.copy_instances, self.src,
                                self.dst, only=['instance-ffffffff'])
        self.assertIn('instance-ffffffff', str(err))


class TestFaults(_Tree):
    """A failing disk, an interruption: per entry, never the whole run."""

    def test_eio_reading_one_entry_fails_that_entry_only(self):
        import errno
        real = os.listdir
        bad = os.path.join(self.src, 'instance-0000002a')

        def listdir(path):
            if path == bad:
                raise OSError(errno.EIO, 'Input/output error', path)
            return real(path)

        self.useFixture(fixtures.MockPatch('os.listdir', listdir))
        res = self.rows(ops.copy_instances(self.src, self.dst,
                                           dry_run=False))
        self.assertEqual('failed', res['instance-0000002a'].result)
        self.assertIn('instance-0000002a: Input/output error',
                      res['instance-0000002a'].message())
        self.assertEqual('copied', res['_base'].result)
        self.assertEqual('copied', res[UUID].result)

    def test_eio_comparing_an_existing_file_fails_that_entry_only(self):
        import errno
        self.write('_base/abc123', b'base image', root=self.dst)
        self.useFixture(fixtures.MockPatchObject(
            ops, 'sha256_file', side_effect=OSError(errno.EIO, 'I/O')))
        res = self.rows(ops.copy_instances(self.src, self.dst,
                                           dry_run=False))
        self.assertEqual('failed', res['_base'].result)
        self.assertEqual('copied', res[UUID].result)

    def test_interrupted_copy_still_sets_the_directory_mode(self):
        os.chmod(os.path.join(self.src, UUID), 0o751)
        self.useFixture(fixtures.MockPatchObject(
            ops.priv, 'copy_sparse', side_effect=KeyboardInterrupt))
        self.assertRaises(KeyboardInterrupt, ops.copy_instances, self.src,
                          self.dst, dry_run=False, only=[UUID])
        self.assertEqual(0o751, os.lstat(os.path.join(
            self.dst, UUID)).st_mode & 0o7777)

    def test_dry_run_is_the_default(self):
        res = self.rows(ops.run(self.src, self.dst).rows)
        self.assertEqual('planned', res['_base'].result)
        self.assertEqual([], os.listdir(self.dst))


class TestParentSwap(_Tree):
    """Issue 21.3: the owner of --to swaps the instance directory root just
    made for a link to a directory of their choice, before root writes the
    files into it (made deterministic: the swap runs right after root's
    mkdir).  Root must not write through the link."""

    def setUp(self):
        super().setUp()
        self.victim = self.useFixture(fixtures.TempDir()).path
        real = ops.priv.make_dir

        def make_dir_then_swap(*args, **kwargs):
            real(*args, **kwargs)
            fresh = os.path.join(self.dst, UUID)
            if os.path.isdir(fresh) and not os.path.islink(fresh):
                os.rename(fresh, fresh + '.moved-away')
                os.symlink(self.victim, fresh)

        self.useFixture(fixtures.MockPatchObject(
            ops.priv, 'make_dir', side_effect=make_dir_then_swap))

    def test_no_write_through_a_swapped_in_link(self):
        res = self.rows(ops.copy_instances(self.src, self.dst,
                                           dry_run=False, only=[UUID]))
        self.assertEqual([], os.listdir(self.victim))
        self.assertEqual('failed', res[UUID].result)
        # The victim directory's owner and mode are not changed either.
        self.assertEqual(0o700, os.stat(self.victim).st_mode & 0o777)

    def test_other_entries_still_copied(self):
        res = self.rows(ops.copy_instances(self.src, self.dst,
                                           dry_run=False))
        self.assertEqual([], os.listdir(self.victim))
        self.assertEqual('copied', res['_base'].result)
        self.assertEqual('copied', res['instance-0000002a'].result)
