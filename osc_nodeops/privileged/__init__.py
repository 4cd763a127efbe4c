"""Every root-only local step of osc-nodeops.

Each function here makes one libvirt call or builds and runs one argv; the
decisions (which device, which options, what to undo) are taken in
``osc_nodeops.ops``.  The functions are plain Python called by a process that
already runs as root (see ``doc/source/cli/instance.rst`` for why this is not
oslo.privsep): keeping them this small is what would make wrapping them in
``@privsep.entrypoint`` a mechanical change.
"""
