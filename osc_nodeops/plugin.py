"""OpenStackClient plugin entry point for osc-nodeops.

Every ``openstack`` invocation imports this module, so it must stay cheap:
no openstacksdk, libvirt, PyMySQL or ops-layer imports here.
"""

import logging

LOG = logging.getLogger(__name__)

API_NAME = 'nodeops'
API_VERSION_OPTION = 'os_nodeops_api_version'
API_VERSIONS = {'1': 'osc_nodeops.plugin.Client'}
DEFAULT_API_VERSION = '1'


class Client(object):
    """The client OSC builds for us: a handle on OSC's own SDK connection.

    The commands talk to nova, neutron and cinder through the openstacksdk
    ``Connection`` OSC has already authenticated (``sdk_connection``), so we
    do not open a second session.
    """

    def __init__(self, instance):
        self._instance = instance

    @property
    def connection(self):
        return self._instance.sdk_connection


def make_client(instance):
    """Return the nodeops client for OSC's ClientManager."""
    LOG.debug('Instantiating nodeops client')
    return Client(instance)


def build_option_parser(parser):
    """Add the global option selecting this plugin's (command-set) version."""
    import os
    parser.add_argument(
        '--os-nodeops-api-version',
        metavar='<nodeops-api-version>',
        default=os.environ.get('OS_NODEOPS_API_VERSION', DEFAULT_API_VERSION),
        help='osc-nodeops command set version, default=%s '
             '(Env: OS_NODEOPS_API_VERSION)' % DEFAULT_API_VERSION)
    return parser
