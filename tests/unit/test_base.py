import io
from unittest import mock

import testtools

from osc_nodeops.v1 import base


class _Cmd(base.NodeOpsCommand):
    """A command whose take_action does what the test says."""

    behaviour = None

    def take_action(self, parsed_args):
        return self.behaviour(self)


class TestExitStatus(testtools.TestCase):

    def _run(self, behaviour):
        cmd = _Cmd(mock.Mock(), None, cmd_name='compute node test')
        cmd.behaviour = behaviour
        err = io.StringIO()
        with mock.patch('sys.stderr', err):
            rc = cmd.run(cmd.get_parser('x').parse_args([]))
        return rc, err.getvalue()

    def test_done_is_0(self):
        self.assertEqual((0, ''), self._run(lambda c: None))

    def test_incomplete_is_1(self):
        def incomplete(cmd):
            cmd.exit_status = base.EXIT_INCOMPLETE
        self.assertEqual(1, self._run(incomplete)[0])

    def test_usage_error_is_2_with_one_line(self):
        def usage(cmd):
            raise base.UsageError('--a and --b cannot be combined')
        rc, err = self._run(usage)
        self.assertEqual(2, rc)
        self.assertEqual('openstack compute node test: error: --a and --b '
                         'cannot be combined\n', err)

    def test_other_errors_propagate_to_osc(self):
        # cliff turns them into one line and exit 1
        def boom(cmd):
            raise base.exceptions.CommandError('no such host')
        self.assertRaises(base.exceptions.CommandError, self._run, boom)
