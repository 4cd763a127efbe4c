"""libvirt-python: one call each."""


def open_connection(uri):
    import libvirt
    return libvirt.open(uri)


def lookup(conn, uuid=None, name=None):
    """The domain by UUID (nova's domain UUID is the instance UUID), else
    by name; ``None`` if neither is defined."""
    import libvirt
    if uuid:
        try:
            return conn.lookupByUUIDString(uuid)
        except libvirt.libvirtError:
            pass
    if name:
        try:
            return conn.lookupByName(name)
        except libvirt.libvirtError:
            pass
    return None


def state(dom):
    """(state, reason) as libvirt reports them."""
    return tuple(dom.state())


def xml(dom):
    return dom.XMLDesc(0)


def suspend(dom):
    return dom.suspend()


def resume(dom):
    return dom.resume()


STATE_NAMES = {0: 'nostate', 1: 'running', 2: 'blocked', 3: 'paused',
               4: 'shutdown', 5: 'shutoff', 6: 'crashed', 7: 'pmsuspended'}
RUNNING = 1
PAUSED = 3
