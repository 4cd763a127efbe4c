"""gunicorn entry point for the minicloud's WSGI services.

The OpenStack WSGI apps parse ``sys.argv`` with oslo.config; under gunicorn
that is gunicorn's own command line, which they reject, so the worker
crash-loops while the port still accepts connections.  This module resets
``sys.argv`` first, then imports the app named by ``MINICLOUD_WSGI_APP``.
Config files are found through each project's usual environment variables
(set by the minicloud script), or, for cinder, ``MINICLOUD_CONFIG_FILES``
(``;``-separated) turned into ``--config-file`` arguments.
"""

import importlib
import os
import sys

APPS = {
    'keystone': 'keystone.wsgi.api',
    'placement': 'placement.wsgi.api',
    'glance': 'glance.wsgi.api',
    'nova': 'nova.wsgi.osapi_compute',
    'neutron': 'neutron.wsgi.api',
    'cinder': 'cinder.wsgi.api',
}

_name = os.environ['MINICLOUD_WSGI_APP']
sys.argv = [_name + '-api']
for _f in os.environ.get('MINICLOUD_CONFIG_FILES', '').split(';'):
    if _f:
        sys.argv += ['--config-file', _f]

application = importlib.import_module(APPS[_name]).application
