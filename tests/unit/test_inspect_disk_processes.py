import os
import subprocess
import tempfile

import testtools

from osc_nodeops.ops.inspect_disk import guest as inspect_disk


class TestEndProcessesUsing(testtools.TestCase):

    def test_leftover_background_process_in_the_directory_is_ended(self):
        root = tempfile.mkdtemp()
        self.addCleanup(os.rmdir, root)
        # A forked grandchild (what `sh -c 'a && sleep'` leaves) with its
        # cwd in the directory, in our session.
        rc = inspect_disk.run_in(root, ['/bin/sh', '-c', 'sleep 60 &'],
                                 confine=False)
        self.assertEqual(0, rc)
        self.assertEqual([], inspect_disk.processes_using(root))

    def test_other_sessions_are_left_alone(self):
        root = tempfile.mkdtemp()
        self.addCleanup(os.rmdir, root)
        other = subprocess.Popen(['sleep', '60'], cwd=root,
                                 start_new_session=True)
        self.addCleanup(other.wait)
        self.addCleanup(other.kill)
        self.assertEqual([], inspect_disk.processes_using(root))
        self.assertEqual([other.pid], inspect_disk.processes_using(
            root, session=other.pid))
        self.assertEqual([], inspect_disk.end_processes_using(root))
        self.assertIsNone(other.poll())
