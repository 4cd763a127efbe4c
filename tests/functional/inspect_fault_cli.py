"""``openstack`` with a step hook installed, for the inspect-disk tests.

    python -m tests.functional.inspect_fault_cli WHEN:STEP[:SIGNAL] ARGS...

runs ``openstack ARGS...`` in this process after installing
``osc_nodeops.ops.inspect_disk.session.step_hook``: when the session reaches
WHEN (``before``/``after``) STEP (one of ``session.STEPS``), the process
sends itself SIGNAL (default KILL).  The fault injection lives here, not in
the production code.
"""

import os
import signal
import sys


def main(argv):
    when, step, *rest = argv[0].split(':')
    sig = getattr(signal, 'SIG' + (rest[0] if rest else 'KILL'))

    def hook(w, s):
        if (w, s) == (when, step):
            os.kill(os.getpid(), sig)

    from osc_nodeops.ops.inspect_disk import session
    session.step_hook = hook
    from openstackclient import shell
    return shell.main(argv[1:])


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
