"""The exceptions the library raises for what the user asked for and for a disk that refuses a write."""

import errno
import os


class UserError(Exception):
    """A mistake in what the user asked for (bad file, bad flag, bad value); shown as one line."""


NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
NOT_WRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM)


class WriteError(UserError):
    """A write to `target` that the disk refused with errno `code` (one of NO_SPACE or NOT_WRITABLE); its
    partial output is already removed."""

    def __init__(self, target, code):
        self.target, self.code = target, code
        hint = "free some space" if code in NO_SPACE else "choose a writable place"
        super().__init__(f"cannot write {target}: {os.strerror(code)}; nothing partial was kept: {hint} and "
                         "run again")
