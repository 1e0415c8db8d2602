"""Errors the command lines report to their user (``python -m fphlib`` and its ``record``
subcommands): one line, exit code 2. A module of its own so that both command lines import
it from below."""


class UserError(Exception):
    """A mistake in the command line or its files: reported as one line, exit code 2."""

    def __init__(self, message, prog=None):
        super().__init__(message)
        self.prog = prog
