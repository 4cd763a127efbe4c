"""Service manager commands (S5): one argv each."""

import os
import shutil

from osc_nodeops.privileged import proc


def systemctl(*args, timeout=120, check=True):
    return proc.run(['systemctl'] + list(args), timeout=timeout,
                    check=check)


def init_script(script, action, timeout=120):
    return proc.run([script, action], timeout=timeout)


def initctl(action, service, timeout=120):
    """Upstart: ``initctl stop|start SERVICE``."""
    return proc.run(['initctl', action, service], timeout=timeout)


def move(src, dst):
    """Move an init file away (or back); refuse to replace anything."""
    if os.path.lexists(dst):
        raise proc.PrivilegedError('%s exists already; not replacing it'
                                   % dst)
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    shutil.move(src, dst)
