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
