"""A stand-in for the Open vSwitch agents of the minicloud's compute hosts.

Run with the cloud venv's python and neutron's config files::

    python fake_ovs_agent.py --config-file neutron.conf \
        --config-file ml2_conf.ini --hosts c01,c02,c03

For every host it reports an "Open vSwitch agent" state over RPC (what the
ML2 openvswitch mechanism driver needs before it binds a port to that host)
and, like a real agent that has wired a port, reports bound DOWN ports of
that host up with ``update_device_list``: the ports go ACTIVE and neutron
sends nova its ``network-vif-plugged`` event.  Nothing is plugged anywhere:
this machine has no Open vSwitch.  Which ports are bound and DOWN is read
from neutron's database (read-only).
"""

import argparse
import sys
import time

from neutron.agent import rpc as agent_rpc
from neutron.common import config as common_config
from neutron.conf.agent import common as agent_conf
from neutron_lib.agent import topics
from neutron_lib import context as n_context
from neutron_lib import rpc as n_rpc
from oslo_config import cfg
from oslo_db import options as db_options
from oslo_log import log as logging
import pymysql
import sqlalchemy.engine

LOG = logging.getLogger('fake_ovs_agent')

REPORT_INTERVAL = 5
POLL_INTERVAL = 1
RETRY_UP = 10

PORTS_SQL = """
SELECT p.id FROM ports p
JOIN ml2_port_bindings b ON b.port_id = p.id
WHERE b.host = %s AND b.status = 'ACTIVE' AND b.vif_type = 'ovs'
  AND p.status = 'DOWN'
"""


def agent_state(host, start):
    return {
        'binary': 'neutron-openvswitch-agent',
        'host': host,
        'topic': topics.AGENT,
        'agent_type': 'Open vSwitch agent',
        'start_flag': start,
        'configurations': {
            'bridge_mappings': {'physnet1': 'br-physnet1'},
            'tunnel_types': [],
            'integration_bridge': 'br-int',
            'ovs_hybrid_plug': False,
            'datapath_type': 'system',
            'ovs_capabilities': {'datapath_types': ['system'],
                                 'iface_types': []},
            'in_distributed_mode': False,
            'devices': 0,
            'minicloud_fake': True,
        },
    }


def db_connect(url):
    u = sqlalchemy.engine.make_url(url)
    return pymysql.connect(host=u.host or '127.0.0.1', port=u.port or 3306,
                           user=u.username, password=u.password,
                           database=u.database, autocommit=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--hosts', required=True)
    args, rest = parser.parse_known_args()
    hosts = [h for h in args.hosts.split(',') if h]
    common_config.register_common_config_options()
    agent_conf.register_agent_state_opts_helper(cfg.CONF)
    db_options.set_defaults(cfg.CONF)
    common_config.init([a for a in rest], default_config_files=[])
    logging.setup(cfg.CONF, 'fake_ovs_agent')
    n_rpc.init(cfg.CONF)
    ctx = n_context.get_admin_context_without_session()
    report = agent_rpc.PluginReportStateAPI(topics.REPORTS)
    plugin = agent_rpc.PluginApi(topics.PLUGIN)
    db = None
    started = set()
    last_report = 0.0
    sent_up = {}
    LOG.info('fake OVS agents for %s', ', '.join(hosts))
    while True:
        now = time.time()
        if now - last_report >= REPORT_INTERVAL:
            for host in hosts:
                try:
                    report.report_state(
                        ctx, agent_state(host, host not in started),
                        use_call=True)
                    started.add(host)
                except Exception as e:
                    LOG.warning('report_state for %s failed: %s', host, e)
            last_report = now
        try:
            if db is None:
                db = db_connect(cfg.CONF.database.connection)
            for host in hosts:
                with db.cursor() as cur:
                    cur.execute(PORTS_SQL, (host,))
                    ids = [r[0] for r in cur.fetchall()]
                todo = [p for p in ids
                        if now - sent_up.get((p, host), 0) > RETRY_UP]
                if not todo:
                    continue
                LOG.info('%s: reporting ports up: %s', host, todo)
                plugin.update_device_list(ctx, todo, [], 'ovs-agent-' + host,
                                          host)
                for p in todo:
                    sent_up[(p, host)] = now
        except Exception as e:
            LOG.warning('port poll failed: %s', e)
            try:
                db.close()
            except Exception:
                pass
            db = None
        time.sleep(POLL_INTERVAL)


if __name__ == '__main__':
    sys.exit(main())
