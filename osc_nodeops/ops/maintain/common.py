"""What the modules of ``compute node maintain`` share: the steps and
columns, the request, a host's row, the report, a host's failure, the
events and one run's state."""

import dataclasses
import re
import typing

from osc_nodeops.ops import campaign
from osc_nodeops.ops import drain
from osc_nodeops.ops import runtime

STEPS = ('drain', 'exec', 'wait', 'check', 'undrain')
State = campaign.State  # the --state cache file
DONE_RE = re.compile(r'^maintain done=([a-z,]+): ')
ORDERS = ('fewest', 'given', 'name')
COLUMNS = ('Host', 'Wave', 'Drained', 'Exec', 'Up', 'Check', 'Undrained',
           'Moved Back', 'Result', 'Message')


@dataclasses.dataclass
class Request(object):
    hosts: tuple = ()
    aggregate: str | None = None
    zone: str | None = None
    max_hosts: int = 1
    exec_cmd: str | None = None
    exec_timeout: float = 3600.0
    check_cmd: str | None = None
    check_timeout: float = 600.0
    up_timeout: float = 900.0
    migrate_back: bool = False
    keep_going: bool = False
    order: str = 'fewest'
    state_file: str | None = None
    rerun_exec: tuple = ()  # hosts whose --exec runs again (--rerun-exec)
    campaign: str | None = None  # the progress record's name (--campaign)
    include_disabled: bool = False  # named hosts disabled by others too
    exec_env: tuple = ()  # names of variables the steps get (--exec-env)
    drain_options: drain.Options | None = None
    poll_interval: float = 3.0
    dry_run: bool = False  # the waves and plans; nothing changed


@dataclasses.dataclass
class HostResult(object):
    host: str
    wave: int | None = None
    steps: dict = dataclasses.field(default_factory=dict)
    result: str = 'not-started'
    message: str = ''
    moved_back: int | None = None
    current: str | None = None  # the step under way (errors charged to it)

    def row(self):
        s = self.steps
        return (self.host, self.wave, s.get('drain'), s.get('exec'),
                s.get('wait'), s.get('check'), s.get('undrain'),
                self.moved_back, self.result, self.message)


@dataclasses.dataclass
class Report(runtime.Report):
    hosts: list
    ok: bool = True
    interrupted: bool = False
    max_out_of_service: int = 0


class Failed(Exception):
    """One host's cycle failed at a step (the message says why; a step's
    ``output`` goes to the row and the events, never the service reason)."""

    def __init__(self, step, message, output=None, status=None):
        super(Failed, self).__init__(message)
        self.step = step
        self.output = output
        self.status = status  # a step's exit status (it ran to its end)



# ----------------------------------------------------------------- events

class Emitter(object):

    def __init__(self, events):
        self.events = events

    def __call__(self, kind, message, host=None, step=None):
        if self.events:
            try:
                self.events(runtime.Event(kind, message, host=host,
                                          step=step))
            except Exception:
                pass



@dataclasses.dataclass
class Run(object):
    """One maintain run: what every wave and cycle needs."""
    conn: typing.Any
    req: Request
    state: campaign.Progress
    results: dict
    owner: str
    emit: typing.Any
    runtime: runtime.Runtime  # the clock and sleep of the waits
    leases_at_start: dict  # host -> (owner, at) another run held then
    kept: dict  # host -> its own disabled reason (--include-disabled)
