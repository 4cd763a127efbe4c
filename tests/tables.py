"""Read a cliff table back (the unit and the functional tests of issue 23:
which columns a table shows, and a multi-line cell's lines in order)."""


def read(text):
    """(header, [row dicts]) of a cliff table: a line whose first cell is
    not empty starts a row; the lines of a multi-line cell are joined with
    newlines."""
    lines = text.splitlines()
    if not lines or not lines[0].startswith('+'):
        raise ValueError('not a table: %r' % text[:200])

    def cells(line):
        return [c.strip() for c in line[1:-1].split('|')]
    header = cells(lines[1])
    rows = []
    for line in lines[3:]:
        if line.startswith('+'):
            continue
        part = cells(line)
        if part[0]:
            rows.append(part)
        else:
            rows[-1] = [('%s\n%s' % (a, b)).strip('\n')
                        for a, b in zip(rows[-1], part)]
    return header, [dict(zip(header, r)) for r in rows]
