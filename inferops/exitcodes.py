"""Exit codes shared by every subcommand (documented once, in README.md)."""

OK = 0
#: a threshold was breached, or a regression was found
BREACH = 1
#: a usage or configuration error (bad flag, bad file, bad data)
USAGE = 2
#: the measurement itself is invalid or incomplete (too few samples, generator
#: saturated, target unreachable, interrupted run)
INVALID = 3


class InferopsError(Exception):
    """An error with a one-line message meant for the user and an exit code."""

    exit_code = USAGE

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(InferopsError):
    """Bad flag, bad value, bad config file: exit 2."""

    exit_code = USAGE


class InvalidMeasurement(InferopsError):
    """The run cannot be trusted (or did not complete): exit 3."""

    exit_code = INVALID
