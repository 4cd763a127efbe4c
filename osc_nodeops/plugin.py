"""OpenStackClient plugin entry point for osc-nodeops.

Every ``openstack`` invocation imports this module, so it must stay cheap:
no openstacksdk, libvirt, PyMySQL or ops-layer imports here.
"""

import logging
import os
import re
import sys

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
# at -v, cliff's errors): their records pass through _HideSecrets.
_ARGV_LOGGERS = ('osc_lib.shell', 'openstackclient.shell', 'openstack')

# An option that carries a secret: --os-password, --os-token,
# --os-application-credential-secret, --os-client-secret, ...
_SECRET_OPTION = re.compile(r'^--[\w-]*(password|token|secret|passcode)'
                            r'[\w-]*(=.*)?$', re.I)
# Environment variables whose values are secrets (OS_PASSWORD, OS_TOKEN,
# OS_AUTH_TOKEN, OS_APPLICATION_CREDENTIAL_SECRET, OS_CLIENT_SECRET...).
_SECRET_ENV = re.compile(r'^OS_\w*(PASSWORD|TOKEN|SECRET|PASSCODE)\w*$')


def _secrets(argv=None, environ=None):
    """The secret values of the command line and the environment, longest
    first (so that a secret inside another is replaced after it)."""
    argv = sys.argv[1:] if argv is None else argv
    environ = os.environ if environ is None else environ
    found = {v for k, v in environ.items() if _SECRET_ENV.match(k)}
    for i, arg in enumerate(argv):
        m = _SECRET_OPTION.match(arg)
        if not m:
            continue
        if m.group(2):
            found.add(m.group(2)[1:])
        elif i + 1 < len(argv):
            found.add(argv[i + 1])
    return sorted((v for v in found if v), key=len, reverse=True)


class _HideSecrets(logging.Filter):
    """Hide secrets in a log record of the loggers that write the argv.

    osc-lib logs the whole command line at INFO (-v); its masking
    (``oslo_utils.strutils.mask_password``) knows ``--password X`` and
    ``--os-password=X`` but not ``--os-password X``, ``--os-token X`` or
    ``--os-application-credential-secret X``, and no URL such as
    ``--nova-db mysql+pymysql://nova:PASSWORD@db/nova``.  So: the
    password of any ``scheme://user:password@`` URL, and every value of
    a password/token/secret option (``--os-password``, ``--os-token``...)
    or environment variable (``OS_PASSWORD``, ``OS_TOKEN``...), become
    ``***``."""

    def filter(self, record):
        text = record.getMessage()
        new = text
        if '://' in new:
            from osc_nodeops.db import url
            new = url.redact(new)
        for secret in _secrets():
            new = new.replace(secret, '***')
        if new != text:
            record.msg = new
            record.args = None
        return True


_HideDBPasswords = _HideSecrets  # its name before it hid more


def hide_db_passwords():
    """Install the filter (once) on the loggers that write the argv."""
    for name in _ARGV_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _HideSecrets) for f in logger.filters):
            logger.addFilter(_HideSecrets())


def build_option_parser(parser):
    """OSC's hook for a plugin's global options: osc-nodeops adds none.

    OSC calls every plugin's ``build_option_parser`` (it has no default),
    and finds a plugin's command set from ``API_VERSION_OPTION`` in the
    cloud configuration (``nodeops_api_version``), falling back to
    ``DEFAULT_API_VERSION``.  The plugin has no API of its own and one
    command set, so an ``--os-nodeops-api-version`` option would only be
    one more line in every ``openstack --help``: there is none (as in
    clouds.yaml or ``OS_NODEOPS_API_VERSION``, ``1`` is the only value).

    OSC calls this before it parses and logs the command line, so this is
    where the secret filter goes onto its loggers.
    """
    hide_db_passwords()
    return parser
