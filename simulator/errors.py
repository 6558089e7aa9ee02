"""Errors that are the user's to fix (bad input), as opposed to bugs.

The CLI prints a :class:`UserError` as one line (or one line per problem) and exits
with status 2, never with a traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with user input: a file, a flag, a scenario value, a server setting.

    ``problems`` holds one human-readable line per problem; ``str(error)`` joins them.
    """

    def __init__(self, *problems: str) -> None:
        self.problems: list[str] = [p for p in problems if p] or ["unknown error"]
        super().__init__("\n".join(self.problems))


class RunLocked(UserError):
    """A run directory is being written by another process (or thread): its lock is held.

    Raised at once, never waited on; the CLI prints it as one line and exits 2.
    ``pid`` is the holder's process id (None when it could not be read) and ``since``
    the time it took the lock (its local ISO time, or None).
    """

    def __init__(self, path: object, pid: int | None, since: str | None) -> None:
        self.path, self.pid, self.since = path, pid, since
        who = f"process {pid}" if pid is not None else "another process"
        super().__init__(f"run directory {path} is in use by {who}"
                         + (f" (since {since})" if since else ""))
