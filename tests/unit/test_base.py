import dataclasses
import io
from unittest import mock

from openstack import exceptions as sdk_exc
import testtools

from osc_nodeops import errors
from osc_nodeops.ops import runtime
from osc_nodeops.v1 import base


class _Cmd(base.NodeOpsLister):
    """A command whose take_action does what the test says."""

    behaviour = None

    def take_action(self, parsed_args):
        self.behaviour(self)
        return (), []


class TestExitStatus(testtools.TestCase):

    def _run(self, behaviour):
        app = mock.Mock()
        app.stderr = io.StringIO()
        app.stdout = io.StringIO()
        cmd = _Cmd(app, None, cmd_name='compute node test')
        cmd.behaviour = behaviour
        rc = cmd.run(cmd.get_parser('x').parse_args(['-f', 'value']))
        return rc, app.stderr.getvalue()

    def test_done_is_0(self):
        self.assertEqual((0, ''), self._run(lambda c: None))

    def test_incomplete_is_1(self):
        def incomplete(cmd):
            cmd.exit_status = base.EXIT_INCOMPLETE
        self.assertEqual(1, self._run(incomplete)[0])

    def test_usage_error_is_2_with_one_line(self):
        def usage(cmd):
            raise errors.UsageError('--a and --b cannot be combined')
        rc, err = self._run(usage)
        self.assertEqual(2, rc)
        self.assertEqual('openstack compute node test: error: --a and --b '
                         'cannot be combined\n', err)

    def _raises(self, exc):
        def behaviour(cmd):
            raise exc
        return self._run(behaviour)

    def test_not_found_and_refused_are_1_with_the_message(self):
        for exc in (errors.NotFound("no nova-compute service on host 'x'"),
                    errors.Refused('nova-compute on c03 is still up')):
            self.assertEqual((1, '%s\n' % exc), self._raises(exc))

    def test_incomplete_says_not_done(self):
        self.assertEqual((1, 'not done: port p was detached\n'),
                         self._raises(errors.Incomplete(
                             'port p was detached')))

    def test_interrupted_is_130(self):
        self.assertEqual(130, self._raises(errors.Interrupted('Ctrl-C'))[0])

    def test_sdk_forbidden_says_admin_role(self):
        exc = sdk_exc.ForbiddenException('Policy does not allow it')
        exc.status_code = 403
        rc, err = self._raises(exc)
        self.assertEqual(1, rc)
        self.assertEqual('%s: Policy does not allow it\n' %
                         errors.ADMIN_NEEDED, err)

    def test_sdk_error_is_one_line(self):
        rc, err = self._raises(sdk_exc.SDKException('line one\nline two'))
        self.assertEqual((1, 'line one line two\n'), (rc, err))

    def test_other_errors_propagate_to_osc(self):
        # cliff turns them into one line and exit 1 (with a traceback at
        # --debug): they are bugs, not refusals.
        self.assertRaises(ZeroDivisionError, self._raises,
                          ZeroDivisionError('x'))

    def test_sigint_interrupts_even_when_started_ignored(self):
        # Issue 19 items 3-4: a process started with SIGINT ignored (a
        # script's `cmd &`, some CI runners) got no KeyboardInterrupt:
        # one SIGINT must still end the command (cliff: exit 130).
        import os
        import signal
        import time
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)
        self.addCleanup(signal.signal, signal.SIGINT, old)
        seen = []

        def hangs(cmd):
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(50):   # a call that does not answer
                time.sleep(0.01)
            seen.append('not interrupted')
        self.assertRaises(KeyboardInterrupt, self._run, hangs)
        self.assertEqual([], seen)
        # given back afterwards
        self.assertIs(signal.SIG_IGN, signal.getsignal(signal.SIGINT))

    def test_someone_elses_sigint_handler_is_left_alone(self):
        import signal
        calls = []
        old = signal.signal(signal.SIGINT, lambda *a: calls.append(a))
        self.addCleanup(signal.signal, signal.SIGINT, old)
        handler = signal.getsignal(signal.SIGINT)
        seen = []
        self._run(lambda c: seen.append(signal.getsignal(signal.SIGINT)))
        self.assertEqual([handler], seen)

    def test_events_go_to_the_app_stderr(self):
        def progress(cmd):
            cmd.events('one event')
        self.assertEqual((0, 'one event\n'), self._run(progress))


@dataclasses.dataclass
class _Report(runtime.Report):
    ok: bool = True
    interrupted: bool = False
    items: list = dataclasses.field(default_factory=list)


class TestReportRows(testtools.TestCase):

    def _status(self, report):
        cmd = _Cmd(mock.Mock(), None)
        cmd.exit_status = base.EXIT_OK
        cmd.report_rows(report)
        return cmd.exit_status

    def test_ok_incomplete_interrupted(self):
        self.assertEqual(0, self._status(_Report(True)))
        self.assertEqual(1, self._status(_Report(False)))
        # SIGINT: 130 as the shell's convention, not 1 ("failed")
        self.assertEqual(130, self._status(_Report(False, True)))

    def test_help_ends_with_the_exit_status_table(self):
        parser = _Cmd(mock.Mock(), None).get_parser('openstack x')
        text = parser.format_help()
        self.assertIn('Exit status:\n  0 everything was done', text)
        self.assertIn('\n  130 interrupted by Ctrl-C', text)
