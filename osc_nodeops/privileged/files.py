"""Root-only file steps (ownership) for copy-instances."""

import os


def chown(path, uid, gid, follow_symlinks=False):
    os.chown(path, uid, gid, follow_symlinks=follow_symlinks)


def link_no_replace(src, dst):
    """Give ``src`` the name ``dst``; fail (EEXIST) if ``dst`` exists.

    ``link`` never replaces an existing name, unlike ``rename``: the
    atomic "never overwrite" the runbook asks for.
    """
    os.link(src, dst, follow_symlinks=False)
