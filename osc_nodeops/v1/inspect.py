"""``openstack instance inspect-disk SERVER`` (runbook S11).

cliff class only: arguments, then ``osc_nodeops.ops.inspect_disk`` (imported
inside ``take_action``), then columns.
"""

import sys

from osc_nodeops.v1 import base
from osc_nodeops.v1 import options


class InspectDisk(base.NodeOpsLister):
    """Look inside an instance's disk on its compute node (as root).

    Runs the Operations Guide's six steps: suspend the domain, connect the
    disk (qemu-nbd), mount a partition read-only, then your --list, --cat,
    --copy-out, --exec or --shell, then unmount, disconnect and resume.
    Teardown always runs (errors, Ctrl-C, SIGTERM); after a crash or a
    SIGKILL, --cleanup (or any later run) undoes what was left and resumes
    the domain.  Approval is required and every session is appended to an
    audit log.
    """

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument(
            'server', metavar='SERVER', nargs='?',
            help='Server (name or ID), resolved through the API.  With '
                 '--cleanup: limit the clean-up to this server (ID, name '
                 'or instance name as recorded; no API call)')
        parser.add_argument(
            '--approved-by', metavar='WHO',
            help='Who approved looking at the user\'s data (required)')
        parser.add_argument(
            '--reason', metavar='TEXT',
            help='Why (required); both go to the audit log')
        self._add_actions(parser)
        # The options of a session default to None so that --cleanup can
        # refuse them (request() puts in the defaults).
        parser.add_argument(
            '--disk', metavar='NAME',
            help='Which disk of the domain: its file name (disk, '
                 'disk.local, ...) or target (vda, vdb); paths come from '
                 'the domain XML.  Default: disk')
        parser.add_argument(
            '--partition', type=options.partition_number, metavar='N',
            help='Partition number (0: a disk without partition table).  '
                 'Default: the first Linux partition')
        parser.add_argument(
            '--read-write', action='store_true',
            help='Mount read-write (default read-only: qemu-nbd, the loop '
                 'device and the mount are all read-only, ext3/4 with '
                 'noload, XFS with norecovery).  Editing a guest\'s files '
                 'can break its ACLs and ownership')
        parser.add_argument(
            '--connector', choices=('auto', 'nbd', 'fuse'),
            help='nbd: the nbd kernel module (qemu-nbd -c /dev/nbdX); '
                 'fuse: qemu-nbd on a unix socket + nbdfuse + a loop '
                 'device (no kernel module needed); auto (default): nbd '
                 'if the module is loaded, else fuse')
        parser.add_argument(
            '--host', metavar='HOST',
            help='The name nova knows this node by.  Default: [DEFAULT] '
                 'host of --nova-conf, else this machine\'s hostname')
        parser.add_argument(
            '--nova-conf', metavar='FILE',
            help='nova.conf to read host and instances_path from '
                 '(default /etc/nova/nova.conf)')
        options.add_deprecated_alias(parser, '--nova-config', '--nova-conf',
                                     dest='nova_conf', metavar='FILE')
        parser.add_argument(
            '--instances-path', metavar='DIR',
            help='nova\'s instances directory; disks outside it are '
                 'refused.  Default: instances_path of --nova-conf, else '
                 '/var/lib/nova/instances')
        parser.add_argument(
            '--libvirt-uri', metavar='URI',
            help='libvirt connection URI (default qemu:///system)')
        parser.add_argument(
            '--state-dir', default='/var/lib/osc-nodeops/inspect',
            metavar='DIR',
            help='Where journals and mount points live (default '
                 '/var/lib/osc-nodeops/inspect)')
        parser.add_argument(
            '--audit-log', default='/var/log/osc-nodeops/inspect-disk.log',
            metavar='FILE',
            help='Audit log, one JSON line per session start, end and '
                 'clean-up (default /var/log/osc-nodeops/inspect-disk.log)')
        parser.add_argument(
            '--step-timeout', type=options.positive_float, metavar='SECONDS',
            help='Bound on each connect/mount step (default 30)')
        return parser

    @staticmethod
    def _add_actions(parser):
        what = parser.add_mutually_exclusive_group()
        what.add_argument('--list', metavar='PATH',
                          help='List PATH of the guest (a directory\'s '
                               'entries)')
        what.add_argument('--cat', metavar='PATH',
                          help='Write the guest file PATH to stdout')
        what.add_argument('--copy-out', metavar=('PATH', 'DEST'), nargs=2,
                          help='Copy the guest file or tree PATH to DEST '
                               'on this node (never overwrites)')
        what.add_argument('--exec', metavar='CMD', dest='exec_cmd',
                          help='Run CMD with /bin/sh in the mount point '
                               '(cwd; also $1 and $INSPECT_MOUNTPOINT), '
                               'confined: it sees the guest and the host\'s '
                               'tools (/usr, /bin, /lib*) read-only, no '
                               'other host file, no network, no host '
                               'privilege, no credential of yours')
        what.add_argument('--shell', action='store_true',
                          help='Interactive shell ($SHELL) in the mount '
                               'point, confined as --exec; teardown when '
                               'it exits')
        what.add_argument('--cleanup', action='store_true',
                          help='Undo what earlier sessions left after a '
                               'crash or SIGKILL (unmount, disconnect, '
                               'resume), from their journals')

    def produce_output(self, parsed_args, column_names, data):
        if column_names is None:
            return 0  # --cat/--exec/--shell wrote their own output
        return super().produce_output(parsed_args, column_names, data)

    #: The options only a session reads.  --cleanup reads SERVER, the
    #: journals of --state-dir (each records its libvirt URI and devices)
    #: and --audit-log; it refuses these.
    SESSION_ONLY = ('approved_by', 'reason', 'disk', 'partition',
                    'read_write', 'connector', 'host', 'nova_conf',
                    'instances_path', 'libvirt_uri', 'step_timeout')

    #: The actions that write their own output (the file's bytes, the
    #: command's, the shell's), not rows: they refuse the formatters'
    #: options.
    OWN_OUTPUT = ('cat', 'exec', 'shell')

    def _refuse_formatting(self, parsed_args, action):
        """A usage error when an option of cliff's output formatters was
        given (its value is not the default) to an action without rows."""
        from cliff import lister
        for option in lister.Lister.get_parser(self, 'x')._actions:
            if not option.option_strings or option.dest == 'help':
                continue
            value = getattr(parsed_args, option.dest, option.default)
            if value == option.default or (
                    option.const is not None and value != option.const):
                continue  # not given, or the other option of its dest
            raise base.UsageError(
                '%s does not go with --%s (it writes its own output, not '
                'rows)' % (option.option_strings[-1], action))

    def request(self, parsed_args):
        from osc_nodeops.ops import inspect_disk as ops

        action, args = self._action(parsed_args)
        if action == 'cleanup':
            for dest in self.SESSION_ONLY:
                if getattr(parsed_args, dest) not in (None, False):
                    raise base.UsageError(
                        '--%s does not go with --cleanup (it reads only '
                        'SERVER, --state-dir and --audit-log)'
                        % dest.replace('_', '-'))
        if action in self.OWN_OUTPUT:
            self._refuse_formatting(parsed_args, action)

        def given_or(dest, field):
            value = getattr(parsed_args, dest)
            return getattr(ops.Request, field) if value is None else value

        return ops.Request(
            server=parsed_args.server, approved_by=parsed_args.approved_by,
            reason=parsed_args.reason, action=action,
            action_args=tuple(args), disk=given_or('disk', 'disk'),
            partition=parsed_args.partition,
            read_write=parsed_args.read_write,
            connector=given_or('connector', 'connector'),
            host=parsed_args.host,
            nova_config=given_or('nova_conf', 'nova_config'),
            instances_path=parsed_args.instances_path,
            libvirt_uri=given_or('libvirt_uri', 'libvirt_uri'),
            state_dir=parsed_args.state_dir,
            audit_log=parsed_args.audit_log,
            step_timeout=given_or('step_timeout', 'step_timeout'),
            out=getattr(self.app.stdout, 'buffer', None) or sys.stdout.buffer)

    def take_action(self, parsed_args):
        from osc_nodeops.ops import inspect_disk as ops

        req = self.request(parsed_args)
        ops.check_arguments(req)
        action = req.action
        if action == 'cat':
            self.app.stdout.flush()
        conn = None if action == 'cleanup' else self.conn
        report = ops.inspect(conn, req, events=self.events)
        self.exit_status = report.exit_status
        return report.columns, report.rows

    @staticmethod
    def _action(parsed_args):
        if parsed_args.cleanup:
            return 'cleanup', []
        if parsed_args.list is not None:
            return 'list', [parsed_args.list]
        if parsed_args.cat is not None:
            return 'cat', [parsed_args.cat]
        if parsed_args.copy_out:
            return 'copy-out', list(parsed_args.copy_out)
        if parsed_args.exec_cmd is not None:
            return 'exec', [parsed_args.exec_cmd]
        if parsed_args.shell:
            return 'shell', []
        return None, []
