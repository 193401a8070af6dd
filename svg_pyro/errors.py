"""Exception types the command line turns into one-line messages."""


class UsageError(Exception):
    """A problem with what the user asked for: reported in one line, exit status 2."""


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. too many non-finite steps in a row): one line, exit status 1."""
