"""Issue 21.8 and 21.9: name checks take the whole string (a trailing
newline is no name), and argument errors found after parsing exit 2."""

import os

import fixtures
import testtools

from osc_nodeops.db import errors as db_errors
from osc_nodeops.db import url
from osc_nodeops import errors
from osc_nodeops.ops import copy_instances
from osc_nodeops.ops import inspect_disk
from osc_nodeops.ops import local_service

UUID = '0f3a9c52-1b8e-4c31-9d5e-6a1f2e3d4c5b'


class TestTrailingNewline(testtools.TestCase):
    """``re.match(r'^...$')`` accepts ``'name\\n'``: ``$`` matches before a
    final newline."""

    def test_service_name(self):
        err = self.assertRaises(local_service.ServiceError,
                                local_service._check_name, 'nova-compute\n')
        self.assertIn('not a service name', str(err))
        local_service._check_name('nova-compute')

    def test_db_schema_name(self):
        self.assertRaises(db_errors.DBConfigError, url.quote_schema,
                          'nova\n')
        self.assertRaises(db_errors.DBConfigError, url.DBURL.parse,
                          'mysql+pymysql://u:p@db/nova%0A')
        self.assertEqual('`nova`', url.quote_schema('nova'))

    def test_instance_name(self):
        t = inspect_disk.Target(UUID, 'vm1', 'instance-0000274a\n', 'c01')
        self.assertRaises(inspect_disk.InspectError,
                          inspect_disk.check_target, t, 'c01')

    def test_instance_entry_and_uuid(self):
        self.assertFalse(copy_instances.is_instance_entry(UUID + '\n'))
        self.assertTrue(copy_instances.is_instance_entry(UUID))


class TestUsageAfterParsing(testtools.TestCase):
    """Found after argparse, still a usage error: exit 2, nothing done."""

    def assertUsage(self, func, *args, **kwargs):
        err = self.assertRaises(errors.NodeOpsError, func, *args, **kwargs)
        self.assertIsInstance(err, errors.UsageError)
        self.assertEqual(errors.EXIT_USAGE, err.exit_status)
        return str(err)

    def test_not_a_service_name(self):
        self.assertIn('not a service name', self.assertUsage(
            local_service.run, 'stop', '../x', dry_run=True))

    def test_copy_instances_overlap_and_not_a_directory(self):
        src = self.useFixture(fixtures.TempDir()).path
        dst = self.useFixture(fixtures.TempDir()).path
        os.mkdir(os.path.join(src, 'sub'))
        self.assertIn('separate', self.assertUsage(
            copy_instances.run, src, os.path.join(src, 'sub'),
            dry_run=False))
        self.assertIn('not a directory', self.assertUsage(
            copy_instances.run, src, os.path.join(dst, 'nope'),
            dry_run=False))
        self.assertIn('not a directory', self.assertUsage(
            copy_instances.run, os.path.join(src, 'nope'), dst))
