"""Keeping stdout for hnn's own output (``--json``) when native code prints to it."""

from __future__ import annotations

import os
import sys


class stdout_to_stderr:
    """Redirect file descriptor 1 to 2 for native code that writes to stdout."""

    def __enter__(self):
        sys.stdout.flush()
        self.saved = os.dup(1)
        os.dup2(2, 1)

    def __exit__(self, *exc):
        sys.stdout.flush()
        os.dup2(self.saved, 1)
        os.close(self.saved)
