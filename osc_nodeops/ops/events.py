"""The event log for machines (``--events FILE``) and the live progress of
a run for people (a status block on a terminal's stderr).

``EventLog`` appends one JSON object per line for every event -- ``time``
(UTC), ``host``, ``server``, ``step``, ``state``, ``message`` (and
``server_name`` when known) -- and flushes each line as it is written, so
that an automation or an audit can follow (``tail -f``) a run that lasts
hours.  ``Progress`` keeps the counters a status block shows (hosts done,
current wave, servers moved, in flight with percent, failed, elapsed, ETA)
from the same events; ``LiveBlock`` draws them with ``rich`` (installed
with cliff's cmd2; imported only on a terminal).

The people's lines follow ``openstack``'s ``-q`` / ``-v`` / ``--debug``
(cliff's ``verbose_level``, ``level_of``): the default says about two
lines per server moved; the pre-flight notes of one code are one line per
run (``local-disk: 200 servers (web-001, ...)``, ``Notes``); warnings and
errors begin ``warning: `` / ``error: `` and are all ``-q`` keeps; a run's
internal counters go to the debug log.  The ``--events`` file keeps every
event, each server's notes included.
"""

import json
import logging
import os
import re
import threading
import time
import typing

from osc_nodeops import errors
from osc_nodeops import safefile
from osc_nodeops import terminal
from osc_nodeops import timeutil

# Engine event kinds that end a server's move, and how.
_MOVED = ('live', 'cold', 'live-suspended', 'done-move', 'ok', 'recovered',
          'started', 'rebooted')
_FAILED = ('failed', 'timeout', 'not-started', 'interrupted')
_STARTED = ('start',)
_TO_MOVE = re.compile(r', (\d+) to \w+')

LOG = logging.getLogger(__name__)


def record(event, step=None, now=None):
    """The JSON-able dict of one event: a ``runtime.Event``-like object
    (``kind``, ``message``, ``item``, ``host``) or a dict already."""
    if isinstance(event, dict):
        out = dict(event)
        out.setdefault('time', timeutil.api_time(now or timeutil.utcnow()))
        out.setdefault('step', step)
        for key in ('host', 'server', 'state', 'message'):
            out.setdefault(key, None)
        return out
    item = getattr(event, 'item', None)
    server = getattr(item, 'server', None)
    out = {
        'time': timeutil.api_time(now or timeutil.utcnow()),
        'host': getattr(event, 'host', None) or getattr(item, 'source', None),
        'server': getattr(item, 'id', None),
        'step': getattr(event, 'step', None) or step,
        'state': getattr(event, 'kind', None),
        'message': _with_detail(str(getattr(event, 'message', event)),
                                getattr(event, 'detail', None)),
    }
    name = getattr(server, 'name', None)
    if name:
        out['server_name'] = name
    code = getattr(event, 'code', None)
    if code:
        out['code'] = code
    return out


def _with_detail(text, detail):
    return '%s (%s)' % (text, detail) if detail else text


class EventLog(object):
    """Append-only JSON lines; one ``write`` is one line, flushed."""

    def __init__(self, path, step=None):
        self.path = path
        self.step = step
        self._lock = threading.Lock()
        try:
            # Root may run this: no link, no file of someone else
            # (issue 21.2): safefile refuses them, exit 2.
            fd = safefile.open_append(path, label='--events %s' % path)
        except OSError as exc:
            raise errors.UsageError('--events %s: %s' % (
                path, exc.strerror or exc))
        self._file: typing.TextIO | None = os.fdopen(
            fd, 'a', encoding='utf-8')

    def write(self, event, step=None):
        line = json.dumps(record(event, step or self.step), sort_keys=True,
                          default=str)
        with self._lock:
            if self._file is None:
                return
            self._file.write(line + '\n')
            self._file.flush()

    __call__ = write

    def close(self):
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


# ---------------------------------------------------------------- progress

class Progress(object):
    """Counters of a run, fed with the run's events (thread-safe)."""

    def __init__(self, hosts_total=None, clock=time.monotonic):
        self.clock = clock
        self.started = clock()
        self.hosts_total = hosts_total
        self.hosts_done = 0
        self.wave = None
        self.servers_total = 0
        self.counted = False
        self.moved = 0
        self.failed = 0
        self.in_flight = {}  # server id -> label
        self.percent = {}  # server id -> percent of its migration
        self.last = ''
        self._lock = threading.Lock()

    def feed(self, event):
        kind = getattr(event, 'kind', None)
        item = getattr(event, 'item', None)
        with self._lock:
            self.last = str(event)
            if kind == 'hosts-total':
                self.hosts_total = int(event.message)
            elif kind == 'plan-count':  # maintain: every host at the start
                self.counted = True
                self.servers_total = int(event.message)
            elif kind == 'plan' and not self.counted:
                # drain / undrain / recover-all: '...: N server(s), M to
                # move, ...' per host
                m = _TO_MOVE.search(str(getattr(event, 'message', '')))
                if m:
                    self.servers_total += int(m.group(1))
            elif kind == 'wave':
                self.wave = event.message
            elif kind == 'host-done':
                self.hosts_done += 1
            elif item is not None:
                sid = item.id
                if kind in _STARTED:
                    self.in_flight[sid] = item.label
                elif kind == getattr(getattr(item, 'action', None),
                                     'success', object()):
                    self._end(sid)
                    self.moved += 1
                elif kind in _FAILED:
                    self._end(sid)
                    self.failed += 1

    def _end(self, sid):
        self.in_flight.pop(sid, None)
        self.percent.pop(sid, None)

    def set_percent(self, server_id, percent):
        with self._lock:
            if server_id in self.in_flight:
                self.percent[server_id] = percent

    def eta(self):
        """Seconds left, from the pace so far; None before a move ended."""
        done = self.moved + self.failed
        if not done or not self.servers_total:
            return None
        left = max(0, self.servers_total - done)
        return (self.clock() - self.started) / done * left

    def lines(self):
        with self._lock:
            elapsed = int(self.clock() - self.started)
            hosts = ('hosts %d/%s' % (self.hosts_done, self.hosts_total)
                     if self.hosts_total else None)
            head = [x for x in (
                hosts, 'wave %s' % self.wave if self.wave else None,
                'servers moved %d/%d' % (self.moved, self.servers_total),
                'in flight %d' % len(self.in_flight),
                'failed %d' % self.failed,
                'elapsed %s' % _duration(elapsed)) if x]
            eta = self.eta() if self.moved + self.failed else None
            if eta is not None:
                head.append('ETA ~%s' % _duration(int(eta)))
            out = [' | '.join(head)]
            for sid, label in sorted(self.in_flight.items(),
                                     key=lambda kv: kv[1]):
                pct = self.percent.get(sid)
                out.append('  %s %s' % (label, '%d%%' % pct if pct is not None
                                        else '...'))
            return out


def _duration(seconds):
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return '%d:%02d:%02d' % (h, m, s) if h else '%d:%02d' % (m, s)


def migration_percent(m):
    """Percent done of a live migration record (``server_migrations``):
    memory and disk bytes together; None when it reports no totals."""
    total = done = 0
    for part in ('memory', 'disk'):
        t = getattr(m, '%s_total_bytes' % part, None) or 0
        r = getattr(m, '%s_remaining_bytes' % part, None)
        p = getattr(m, '%s_processed_bytes' % part, None)
        if not t:
            continue
        total += t
        done += p if p is not None else (t - (r or 0))
    if not total:
        return None
    return max(0, min(100, int(100 * done / total)))


class LiveBlock(object):
    """A status block at the bottom of a terminal's stderr, event lines
    scrolling above it; refreshed a few times a second by rich's ``Live``.
    ``compute``: looks up the percent of each live migration in flight
    (one GET per server in flight, every ``percent_every`` seconds)."""

    def __init__(self, stream, progress, compute=None, percent_every=3.0):
        from rich import console as rich_console
        from rich import live as rich_live
        from rich import text as rich_text
        self._text = rich_text.Text
        self.progress = progress
        self.compute = compute
        self.percent_every = percent_every
        self._stop = threading.Event()
        self._watcher = None
        self.console = rich_console.Console(file=stream, force_terminal=True,
                                            highlight=False, markup=False)
        self.live = rich_live.Live(self, console=self.console,
                                   refresh_per_second=2, transient=True,
                                   redirect_stdout=False,
                                   redirect_stderr=False)

    def __rich__(self):
        return self._text(terminal.printable('\n'.join(
            self.progress.lines())))

    def _watch(self):
        """The percent of every live migration in flight, in a thread of
        its own (an API call never holds up the drawing or the run)."""
        while not self._stop.wait(self.percent_every):
            for sid in list(self.progress.in_flight):
                try:
                    compute = (self.compute() if callable(self.compute)
                               else self.compute)
                    found = [m for m in compute.server_migrations(sid)
                             if m.status in ('running', 'preparing',
                                             'queued')]
                except Exception:  # the block never breaks the run
                    continue
                if found:
                    pct = migration_percent(found[-1])
                    if pct is not None:
                        self.progress.set_percent(sid, pct)

    def say(self, line):
        self.console.print(self._text(terminal.printable(str(line))))

    def __call__(self, event):
        self.progress.feed(event)
        self.say(event)

    def start(self):
        self.live.start()
        if self.compute is not None:
            self._watcher = threading.Thread(target=self._watch, daemon=True)
            self._watcher.start()

    def stop(self):
        self._stop.set()
        self.live.stop()
        for line in self.progress.lines()[:1]:
            self.say(line)


# ------------------------------------------------------ the people's lines

# The levels of the people's lines on cliff's ``verbose_level`` scale: an
# event is said when its level is at most the run's (``openstack -q`` 0,
# the default 1, ``-v`` 2, ``-vv`` or ``--debug`` 3 (osc-lib)).  Errors
# and warnings are said at every level; DEBUG goes to the debug log.
ERROR, WARNING, QUIET, DEFAULT, VERBOSE, DEBUG = -2, -1, 0, 1, 2, 3
_PREFIX = {ERROR: 'error: ', WARNING: 'warning: '}
_ERROR_KINDS = frozenset(('failed', 'refused', 'fatal'))
_WARNING_KINDS = frozenset(('warning', 'timeout', 'unsure', 'interrupt',
                            'interrupted', 'not-started', 'conflict',
                            'fallback'))
# Each step of a move seen from the poller: ``-v``.
_VERBOSE_KINDS = frozenset(('issued', 'progress', 'call'))
# A run's internal counters (maintain's, for the live block): debug log.
_DEBUG_KINDS = frozenset(('hosts-total', 'plan-count', 'host-done'))


def is_warning_or_error(line):
    """A line of the people's stream that ``-q`` keeps."""
    return line.startswith(tuple(_PREFIX.values()))


def level_of(event):
    """The level of ``event``: a plain string is said by default unless it
    begins ``warning: `` or ``error: ``."""
    kind = getattr(event, 'kind', None)
    if kind is None:
        text = str(event)
        return next((lvl for lvl, prefix in _PREFIX.items()
                     if text.startswith(prefix)), DEFAULT)
    if kind in _ERROR_KINDS:
        return ERROR
    if kind in _WARNING_KINDS:
        return WARNING
    if kind in _DEBUG_KINDS:
        return DEBUG
    if kind in _VERBOSE_KINDS:
        return VERBOSE
    return DEFAULT


def line_of(event, level, verbose=DEFAULT):
    """The line people read for ``event``: a warning or an error begins
    with its level, once; ``-v`` adds the event's ``detail``."""
    text = str(event)
    kind = getattr(event, 'kind', None)
    message = str(getattr(event, 'message', ''))
    if kind and getattr(event, 'item', None) is None and \
            not getattr(event, 'step', None) and \
            message.startswith(kind + ': '):
        text = message  # 'refused: refused: ...' said once
    if verbose >= VERBOSE:
        text = _with_detail(text, getattr(event, 'detail', None))
    prefix = _PREFIX.get(level, '')
    return text if text.startswith(prefix) else prefix + text


def _inline(value, width=40):
    """A tenant's string (a server name) inside a line: terminal controls,
    newlines and tabs escaped, at most ``width`` characters."""
    text = terminal.printable(str(value)).replace('\n', '\\n').replace(
        '\t', '\\t')
    return text if len(text) <= width else text[:width - 3] + '...'


class Notes(object):
    """The pre-flight notes of the servers, one line per code: ``local-disk:
    200 servers (web-001, web-002, web-003, ... +197)``.  A server counts
    once per code and run; a note about no server is said once per run.
    The ``--events`` file and the rows keep each server's note."""

    SHOWN = 3

    def __init__(self):
        self._pending: dict = {}  # code -> {server id: name}
        self._said: set = set()

    def add(self, event):
        """Take a pre-flight note of a server; False for any other event
        (and for a note about no server: it is said as it is, once)."""
        if getattr(event, 'kind', None) != 'preflight':
            return False
        item = event.item
        if item is None:
            key = (None, event.message)
            if key in self._said:
                return True
            self._said.add(key)
            return False
        code = event.code or event.message.split(':', 1)[0]
        key = (code, item.id)
        if key not in self._said:
            self._said.add(key)
            name = getattr(getattr(item, 'server', None), 'name', None)
            self._pending.setdefault(code, {})[item.id] = name or item.id
        return True

    def lines(self):
        """The aggregated lines of the notes taken since the last call."""
        out = []
        for code, names in self._pending.items():
            shown = [_inline(n) for n in list(names.values())[:self.SHOWN]]
            more = len(names) - len(shown)
            out.append('%s: %d server%s (%s%s)' % (
                code, len(names), '' if len(names) == 1 else 's',
                ', '.join(shown), ', ... +%d' % more if more else ''))
        self._pending.clear()
        return out


class Sink(object):
    """Where a command's events go: the people's view on ``stream`` (a
    live block on a terminal, else one line per event said at ``verbose``,
    cliff's ``verbose_level``) and, with ``path``, the JSON lines of
    ``EventLog`` (every event).  ``with Sink(...) as events:``."""

    def __init__(self, stream, path=None, step=None, compute=None,
                 live=None, verbose=DEFAULT):
        self.stream = stream
        self.verbose = verbose
        self.notes = Notes()
        self.log = EventLog(path, step=step) if path else None
        self.block = None
        if live is None:
            live = bool(getattr(stream, 'isatty', lambda: False)())
        if live and verbose > QUIET:  # -q: no status block either
            try:
                self.block = LiveBlock(stream, Progress(), compute=compute)
            except ImportError:  # no rich: one line per event
                self.block = None

    def __call__(self, event):
        if self.log is not None:
            try:
                self.log.write(event)
            except OSError:
                pass  # a full disk must not stop a drain
        if self.block is not None:
            self.block.progress.feed(event)
        level = level_of(event)
        if DEFAULT <= level <= self.verbose < VERBOSE and \
                self.notes.add(event):
            return  # in the line of its code
        for text in self.notes.lines():  # said before the next event
            self._write(text)
        if level == DEBUG:
            LOG.debug('%s', terminal.printable(str(event)))
        elif level <= self.verbose:
            self._write(line_of(event, level, self.verbose))

    def say(self, line):
        """One line for people (above the live block), after the notes
        gathered so far."""
        for text in self.notes.lines() + [str(line)]:
            self._write(text)

    def _write(self, text):
        text = terminal.printable(text.rstrip('\n'))
        if self.block is not None:
            self.block.say(text)
        else:
            self.stream.write(text + '\n')
            self.stream.flush()

    def __enter__(self):
        if self.block is not None:
            self.block.start()
        return self

    def close(self):
        """Say the notes left, end the live block (its last state stays as
        one line) and the log; idempotent."""
        for text in self.notes.lines():
            self._write(text)
        block, self.block = self.block, None
        if block is not None:
            block.stop()
        if self.log is not None:
            self.log.close()

    def __exit__(self, *exc):
        self.close()
        return False
