"""Plan, execute, poll and verify operations on the servers of one host.

The machinery behind ``compute node drain`` / ``undrain`` and ``server
recover-all``: ``PlanItem`` (a server and its ``Action``; ``items``),
``HostPoller`` (one host-wide ``Snapshot`` per poll: migrations, then
servers; ``snapshot``), the actions' base classes (``actions``) and the
bounded-parallel ``Executor`` (retries, transient faults; ``executor``)
with its timeouts (``ladder``) and its Ctrl-C (``interrupts``).  No cliff
here; it reports through an ``events`` callback.  How the pieces fit, and
how to write an action: doc/source/contributor/architecture.rst.

The names the runbooks use are imported here: ``engine.PlanItem``,
``engine.Executor`` ...
"""

from osc_nodeops.ops.engine.actions import Action
from osc_nodeops.ops.engine.actions import MigrationAction
from osc_nodeops.ops.engine.executor import Executor
from osc_nodeops.ops.engine.executor import ExecutorOptions
from osc_nodeops.ops.engine.interrupts import INTERRUPT_GRACE
from osc_nodeops.ops.engine.items import another_host
from osc_nodeops.ops.engine.items import CALL
from osc_nodeops.ops.engine.items import Check
from osc_nodeops.ops.engine.items import COMPLETE
from osc_nodeops.ops.engine.items import Context
from osc_nodeops.ops.engine.items import FAILED
from osc_nodeops.ops.engine.items import FATAL
from osc_nodeops.ops.engine.items import INTERRUPTED
from osc_nodeops.ops.engine.items import MOVED_EARLIER
from osc_nodeops.ops.engine.items import NOT_STARTED
from osc_nodeops.ops.engine.items import PENDING
from osc_nodeops.ops.engine.items import PlanItem
from osc_nodeops.ops.engine.items import PLANNED
from osc_nodeops.ops.engine.items import ROW_COLUMNS
from osc_nodeops.ops.engine.items import settle
from osc_nodeops.ops.engine.items import SKIPPED
from osc_nodeops.ops.engine.items import TIMEOUT
from osc_nodeops.ops.engine.ladder import ON_TIMEOUT_CHOICES
from osc_nodeops.ops.engine.ladder import parse_ladder
from osc_nodeops.ops.engine.snapshot import HostPoller
from osc_nodeops.ops.engine.snapshot import Snapshot

__all__ = [
    'Action', 'CALL', 'COMPLETE', 'Check', 'Context', 'Executor',
    'ExecutorOptions', 'FAILED', 'FATAL', 'HostPoller', 'INTERRUPTED',
    'INTERRUPT_GRACE', 'MOVED_EARLIER', 'MigrationAction', 'NOT_STARTED',
    'ON_TIMEOUT_CHOICES', 'PENDING', 'PLANNED', 'PlanItem', 'ROW_COLUMNS',
    'SKIPPED', 'Snapshot', 'TIMEOUT', 'another_host', 'parse_ladder', 'settle',
]
