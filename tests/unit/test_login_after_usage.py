"""A usage error is judged before the login (issue 22): the real
``openstack`` shell, with a keystone that nothing answers, says the usage
error in one line with exit 2; a well-formed command then fails on the
login itself, so the login does happen when the cloud is needed."""

import os
import subprocess
import sys

import testtools

# Nothing listens on port 9 (discard) of 127.0.0.1 in a test run: the
# login is refused at once instead of waiting.
UNREACHABLE = {
    'OS_AUTH_URL': 'http://127.0.0.1:9/v3', 'OS_USERNAME': 'admin',
    'OS_PASSWORD': 'secret-password', 'OS_PROJECT_NAME': 'admin',
    'OS_USER_DOMAIN_NAME': 'Default', 'OS_PROJECT_DOMAIN_NAME': 'Default',
    'OS_IDENTITY_API_VERSION': '3',
}


def openstack(*argv):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith('OS_')}
    env.update(UNREACHABLE)
    proc = subprocess.run(
        [sys.executable, '-m', 'openstackclient.shell'] + list(argv),
        env=env, capture_output=True, text=True, timeout=120,
        stdin=subprocess.DEVNULL)
    return proc.returncode, proc.stdout, proc.stderr


class TestUsageBeforeLogin(testtools.TestCase):

    def test_usage_errors_need_no_keystone(self):
        for argv, says in (
                (['compute', 'node', 'drain', 'c01', 'c01'], 'named twice'),
                (['compute', 'node', 'drain', 'c01', '--target-host',
                  'c01'], '--target-host'),
                (['server', 'recover-all', 'c01', '--dead',
                  '--hard'], '--hard')):
            rc, out, err = openstack(*argv)
            self.assertEqual(2, rc, (argv, err))
            self.assertEqual('', out)
            lines = err.strip().splitlines()
            self.assertEqual(1, len(lines), (argv, err))
            self.assertIn(says, lines[0])
            self.assertIn('error:', lines[0])
            self.assertNotIn('127.0.0.1:9', err)

    def test_a_good_command_logs_in(self):
        rc, out, err = openstack('compute', 'node', 'show', 'c01')
        self.assertEqual(1, rc, err)
        self.assertIn('127.0.0.1:9', err)
        self.assertNotIn('secret-password', err)
