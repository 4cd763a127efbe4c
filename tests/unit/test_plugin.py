import subprocess
import sys

import testtools

from osc_nodeops import plugin


class TestPlugin(testtools.TestCase):

    def test_api_version_table(self):
        self.assertEqual('nodeops', plugin.API_NAME)
        self.assertEqual('os_nodeops_api_version', plugin.API_VERSION_OPTION)
        self.assertIn(plugin.DEFAULT_API_VERSION, plugin.API_VERSIONS)

    def test_make_client_reuses_sdk_connection(self):
        class Instance(object):
            sdk_connection = object()
        self.assertIs(Instance.sdk_connection,
                      plugin.make_client(Instance()))

    def test_option_parser_adds_no_option(self):
        # The plugin has no API of its own and one command set: OSC reads
        # the version from the cloud config (``nodeops_api_version``,
        # default DEFAULT_API_VERSION) whether or not an option exists,
        # so none is added to every ``openstack --help``.
        import argparse
        parser = argparse.ArgumentParser()
        before = [a.dest for a in parser._actions]
        self.assertIs(parser, plugin.build_option_parser(parser))
        self.assertEqual(before, [a.dest for a in parser._actions])

    def test_openstack_help_has_no_nodeops_version_option(self):
        # The real CLI: no --os-nodeops-api-version in the global options,
        # and the command set is still loaded (v1, OSC's default lookup).
        import os
        exe = os.path.join(os.path.dirname(sys.executable), 'openstack')
        env = {k: v for k, v in os.environ.items()
               if not k.startswith('OS_')}
        res = subprocess.run([exe, '--help'], capture_output=True,
                             text=True, env=env, timeout=120)
        self.assertEqual(0, res.returncode, res.stderr)
        lines = res.stdout.splitlines()
        self.assertEqual([], [x for x in lines if 'nodeops-api' in x])
        self.assertIn('--os-compute-api-version', res.stdout)
        self.assertTrue(any(x.lstrip().startswith('compute node drain ')
                            for x in lines))

    def test_command_modules_import_nothing_heavy(self):
        # Every ``openstack`` run loads our entry points: importing the
        # plugin and every command module must not pull in libvirt, PyMySQL,
        # openstacksdk's cloud layer or our ops layer.
        code = (
            'import sys, importlib, pkgutil\n'
            'import osc_nodeops.plugin, osc_nodeops.v1\n'
            'for m in pkgutil.iter_modules(osc_nodeops.v1.__path__):\n'
            '    importlib.import_module("osc_nodeops.v1." + m.name)\n'
            'heavy = [n for n in sys.modules if n.split(".")[0] in '
            '("libvirt", "pymysql") or n.startswith("osc_nodeops.ops") '
            'or n.startswith("osc_nodeops.db") '
            'or n.startswith("osc_nodeops.privileged")]\n'
            'print(",".join(sorted(heavy)))\n')
        out = subprocess.check_output([sys.executable, '-c', code], text=True)
        self.assertEqual('', out.strip())


class TestLogRedaction(testtools.TestCase):

    def test_start_with_options_hides_db_passwords(self):
        # osc-lib logs the whole command line at INFO (-v): "START with
        # options: ... --nova-db mysql+pymysql://nova:PASSWORD@db/nova"
        import argparse
        import logging
        plugin.build_option_parser(argparse.ArgumentParser())
        plugin.build_option_parser(argparse.ArgumentParser())  # once only
        log = logging.getLogger('osc_lib.shell')
        self.assertEqual(1, sum(isinstance(f, plugin._HideDBPasswords)
                                for f in log.filters))
        with self.assertLogs('osc_lib.shell', 'INFO') as logs:
            log.info('START with options: %s', 'compute node volumes c01 '
                     '--nova-db mysql+pymysql://nova:Top@S3cret@db/nova')
        [line] = logs.output
        self.assertNotIn('S3cret', line)
        self.assertIn('--nova-db mysql+pymysql://nova:***@db/nova', line)

    def test_verbose_hides_the_cloud_password_and_tokens(self):
        # Issue 21.10: osc-lib masks "--password X" and "--os-password=X"
        # but logs "--os-password X" (and --os-token X) in clear at -v.
        # The real CLI, on a command that needs no cloud.
        import os
        exe = os.path.join(os.path.dirname(sys.executable), 'openstack')
        env = {k: v for k, v in os.environ.items()
               if not k.startswith('OS_')}
        env.update(OS_PASSWORD='EnvPw0rd', OS_TOKEN='EnvT0ken')
        res = subprocess.run(
            [exe, '-v', '--debug', '--os-password', 'S3cret pw',
             '--os-token', 'Tok3nValue', '--os-client-secret=Tok3nTwo',
             '--os-application-credential-secret', 'AppS3cret',
             'compute', 'node', 'copy-instances', '--from', '/nonexistent',
             '--to', '/nonexistent2'],
            capture_output=True, text=True, env=env, timeout=120)
        out = res.stdout + res.stderr
        self.assertIn('START with options', out)
        for secret in ('S3cret', 'Tok3nValue', 'Tok3nTwo', 'AppS3cret',
                       'EnvPw0rd', 'EnvT0ken'):
            self.assertNotIn(secret, out)
        self.assertIn('--os-password ***', out)
