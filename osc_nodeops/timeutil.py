"""Time as osc-nodeops handles it: aware UTC datetimes, one parser.

nova and neutron write timestamps with and without a zone
(``2026-11-23T21:15:19Z``, ``2026-11-23T21:15:19.123456``,
``...+00:00``); every one of them means UTC.  Compare only what
``parse_time`` returns with what ``utcnow`` returns.

Only the standard library: ops, db and v1 may all import this.
"""

import datetime
import re

UTC = datetime.timezone.utc
# The earliest time, aware: a sort key for records without a timestamp.
EPOCH = datetime.datetime.min.replace(tzinfo=UTC)
_FRACTION = re.compile(r'^(.{19})\.(\d+)([+-].*)?$')


def utcnow():
    """Now, as an aware UTC datetime."""
    return datetime.datetime.now(UTC)


def parse_time(value):
    """An API timestamp (str or datetime, with or without zone) as an aware
    UTC datetime; None for an empty or unreadable value."""
    if not value:
        return None
    if isinstance(value, datetime.datetime):
        dt = value
    else:
        text = str(value).strip().replace('Z', '+00:00')
        try:
            dt = datetime.datetime.fromisoformat(text)
        except ValueError:
            # Python 3.10 reads only 3 or 6 fraction digits.
            m = _FRACTION.match(text)
            if not m:
                return None
            text = m.group(1) + '.' + (m.group(2) + '000000')[:6] + \
                (m.group(3) or '')
            try:
                dt = datetime.datetime.fromisoformat(text)
            except ValueError:
                return None
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def api_time(dt):
    """An aware datetime as the APIs write it: ``2026-11-23T21:15:19Z``."""
    return dt.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')


def seconds_text(value):
    """A number of seconds as messages say it: one decimal, none for a
    whole number (``600``, ``0.3``, ``2.5``); a positive duration never
    reads ``0`` (``0.04``).  ``--timeout 0.3`` said "after 0s" with
    ``%d``."""
    value = float(value)
    shown = round(value, 1)
    if shown == 0 and value > 0:
        return '%.1g' % value
    text = '%.1f' % shown
    return text[:-2] if text.endswith('.0') else text
