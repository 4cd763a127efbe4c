"""ops/runtime.py Report: the one place a report's exit status is made."""

import dataclasses

import testtools

from osc_nodeops import errors
from osc_nodeops.ops import copy_instances
from osc_nodeops.ops import drain
from osc_nodeops.ops import inspect_disk
from osc_nodeops.ops import local_service
from osc_nodeops.ops import maintain
from osc_nodeops.ops import recover
from osc_nodeops.ops import runtime


class TestReportExitStatus(testtools.TestCase):

    def test_ok_is_0_not_ok_is_1_interrupted_is_130(self):
        @dataclasses.dataclass
        class _Report(runtime.Report):
            ok: bool = True
            interrupted: bool = False

        self.assertEqual(errors.EXIT_OK, runtime.Report().exit_status)
        report = _Report()
        self.assertEqual(errors.EXIT_OK, report.exit_status)
        report.ok = False
        self.assertEqual(errors.EXIT_INCOMPLETE, report.exit_status)
        report.interrupted = True
        self.assertEqual(errors.EXIT_INTERRUPTED, report.exit_status)
        report.ok = True  # interrupted wins: the rows say what is known
        self.assertEqual(errors.EXIT_INTERRUPTED, report.exit_status)

    def test_every_report_is_one(self):
        reports = (inspect_disk.Report, local_service.Report,
                   copy_instances.Report, drain.Report, drain.HostReport,
                   recover.Report, recover.UndoReport, maintain.Report)
        for cls in reports:
            self.assertTrue(issubclass(cls, runtime.Report), cls)

    def test_local_reports(self):
        failed = local_service.Row('stop', 'systemctl stop x',
                                   result=local_service.FAILED)
        done = local_service.Row('stop', 'systemctl stop x',
                                 result=local_service.DONE)
        self.assertEqual(1, local_service.Report('systemd',
                                                 [done, failed]).exit_status)
        self.assertEqual(0, local_service.Report('systemd',
                                                 [done]).exit_status)
        self.assertEqual(1, inspect_disk.Report('list', ok=False).exit_status)
        self.assertEqual(0, inspect_disk.Report('list').exit_status)
        conflict = copy_instances.EntryResult(
            'x', result=copy_instances.CONFLICT)
        self.assertEqual(1, copy_instances.Report([conflict]).exit_status)
        self.assertEqual(0, copy_instances.Report(
            [copy_instances.EntryResult('x')]).exit_status)
