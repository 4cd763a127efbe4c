"""qemu-nbd and nbdfuse: one argv each."""

from osc_nodeops.privileged import proc


def qemu_nbd_connect(device, path, fmt, read_only=True, timeout=60):
    """``qemu-nbd -c DEVICE`` (the nbd kernel module connector)."""
    argv = ['qemu-nbd', '-c', device, '-f', fmt]
    if read_only:
        argv.append('--read-only')
    argv.append(path)
    return proc.run(argv, timeout=timeout)


def qemu_nbd_disconnect(device, timeout=60):
    return proc.run(['qemu-nbd', '-d', device], timeout=timeout)


def qemu_nbd_serve(socket_path, pid_file, path, fmt, read_only=True,
                   timeout=60):
    """Serve a disk on a unix socket; returns once the server listens.

    ``--fork`` makes qemu-nbd return only when the socket is ready and
    ``--pid-file`` tells us whom to stop.  Without ``--persistent`` it also
    exits by itself when its last client (nbdfuse) goes away.
    """
    argv = ['qemu-nbd', '--fork', '--pid-file', pid_file, '-k', socket_path,
            '-f', fmt]
    if read_only:
        argv.append('--read-only')
    argv.append(path)
    return proc.run(argv, timeout=timeout)


def nbdfuse_start(mount_dir, file_name, socket_path, pid_file, log_path,
                  read_only=True):
    """Expose the NBD export as ``MOUNT_DIR/FILE_NAME`` (a FUSE mount)."""
    argv = ['nbdfuse', '-P', pid_file]
    if read_only:
        argv.append('-r')
    argv += ['%s/%s' % (mount_dir, file_name), '--unix', socket_path]
    return proc.spawn(argv, log_path)
