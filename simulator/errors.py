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
