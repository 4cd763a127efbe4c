"""tox.ini and tools/test-all run the same checks: each tox env's commands
are one ``tools/checks ENV`` call, and test-all calls tools/checks for every
check but cover (so a check is defined once, in tools/checks)."""

import configparser
import os
import re
import subprocess

import testtools

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
CHECKS = ('pep8', 'typecheck', 'unit', 'functional', 'cover', 'docs',
          'releasenotes')


def tox_commands():
    parser = configparser.RawConfigParser()
    parser.read(os.path.join(ROOT, 'tox.ini'))
    out = {}
    for section in parser.sections():
        if section == 'testenv' or section.startswith('testenv:'):
            name = section.partition(':')[2] or 'py3'
            out[name] = [line.strip() for line in parser.get(
                section, 'commands', fallback='').splitlines()
                if line.strip()]
    return parser, out


class TestToxAndTestAll(testtools.TestCase):

    def test_every_tox_env_runs_one_check(self):
        parser, commands = tox_commands()
        envlist = [e.strip() for e in parser.get('tox', 'envlist').split(',')]
        self.assertEqual(['py3', 'pep8', 'typecheck'], envlist)
        expected = {'py3': 'unit'}
        for env in ('functional', 'pep8', 'typecheck', 'cover', 'docs',
                    'releasenotes'):
            expected[env] = env
        self.assertEqual(set(expected), set(commands))
        for env, check in expected.items():
            self.assertEqual(
                ['bash {toxinidir}/tools/checks %s {posargs}' % check],
                commands[env], env)

    def test_test_all_runs_the_same_checks(self):
        with open(os.path.join(ROOT, 'tools', 'test-all')) as f:
            text = f.read()
        called = set(re.findall(r'tools/checks (\w+)', text))
        self.assertEqual(set(CHECKS) - {'cover'}, called)
        # no check of its own besides tools/checks
        for tool in ('ruff check', 'sphinx-build', 'stestr --test-path='
                     './tests/unit run', 'stestr --test-path=./tests/'
                     'functional run'):
            self.assertNotIn(tool, text)

    def test_checks_knows_each_check_and_refuses_others(self):
        script = os.path.join(ROOT, 'tools', 'checks')
        with open(script) as f:
            text = f.read()
        for check in CHECKS:
            self.assertIn('\n%s)\n' % check, text)
        res = subprocess.run(['bash', script, 'nonsense'],
                             capture_output=True, text=True)
        self.assertEqual(2, res.returncode)
        self.assertIn("unknown check 'nonsense'", res.stderr)
