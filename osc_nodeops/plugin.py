"""OpenStackClient plugin entry point for osc-nodeops.

Every ``openstack`` invocation imports this module, so it must stay cheap:
no openstacksdk, libvirt, PyMySQL or ops-layer imports here.
"""

import logging

LOG = logging.getLogger(__name__)

API_NAME = 'nodeops'
API_VERSION_OPTION = 'os_nodeops_api_version'
# The commands talk to nova, neutron and cinder through the openstacksdk
# ``Connection`` OSC has already authenticated: that is our "client".
API_VERSIONS = {'1': 'openstack.connection.Connection'}
DEFAULT_API_VERSION = '1'


def make_client(instance):
    """OSC's ClientManager asks every plugin for a client: ours is OSC's own
    SDK connection, so no second session is opened."""
    LOG.debug('Instantiating nodeops client')
    return instance.sdk_connection


# The loggers that write the command line (osc-lib's "START with options"
# at -v, cliff's errors): their records pass through _HideDBPasswords.
_ARGV_LOGGERS = ('osc_lib.shell', 'openstackclient.shell', 'openstack')


class _HideDBPasswords(logging.Filter):
    """Replace the password of any ``scheme://user:password@`` URL in a log
    record by ``***``: osc-lib logs the whole command line at INFO (-v),
    and its own masking knows ``--password`` options, not URLs such as
    ``--nova-db mysql+pymysql://nova:PASSWORD@db/nova``."""

    def filter(self, record):
        if '://' in str(record.msg) or any(
                '://' in str(a) for a in (record.args or ())
                if isinstance(a, str)):
            from osc_nodeops.db import url
            record.msg = url.redact(record.getMessage())
            record.args = None
        return True


def hide_db_passwords():
    """Install the filter (once) on the loggers that write the argv."""
    for name in _ARGV_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _HideDBPasswords) for f in logger.filters):
            logger.addFilter(_HideDBPasswords())


def build_option_parser(parser):
    """Add the global option selecting this plugin's (command-set) version.

    OSC calls this before it parses and logs the command line, so this is
    also where the DB-password filter goes onto its loggers.
    """
    import os
    hide_db_passwords()
    parser.add_argument(
        '--os-nodeops-api-version',
        metavar='<nodeops-api-version>',
        default=os.environ.get('OS_NODEOPS_API_VERSION', DEFAULT_API_VERSION),
        help='osc-nodeops command set version, default=%s '
             '(Env: OS_NODEOPS_API_VERSION)' % DEFAULT_API_VERSION)
    return parser
