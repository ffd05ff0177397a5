"""User-facing errors.

Every problem with the user's input (a data file, a configuration value, a command-line option) is raised
as a :class:`UserInputError`: the command-line interface prints it as one line on stderr and exits with
status 2, without a traceback. Library users can catch it like any :class:`ValueError`.
"""
from __future__ import annotations

from typing import Any, Optional, Union
import os


class UserInputError(ValueError):
    """Base class of errors caused by the user's input rather than by a bug."""


class DataError(UserInputError):
    r"""A malformed data set file.

    The message names the file, the line (or row of a feature matrix) and the offending value::

        DataError: data/foo.inter:17: column 'itemID': not a non-negative integer: 'abc'

    Args:
        message (str): What is wrong.
        path (str or os.PathLike, optional): The file. (default: :obj:`None`)
        line (int, optional): The 1-based line number (the header is line 1), or the 0-based row of a
            feature matrix when :obj:`row` is used instead. (default: :obj:`None`)
        value (Any, optional): The offending value, shown with :func:`repr`. (default: :obj:`None`)
    """
    def __init__(self, message: str, path: Optional[Union[str, os.PathLike]] = None,
                 line: Optional[int] = None, value: Any = None, *, has_value: bool = False) -> None:
        self.path = None if path is None else os.fspath(path)
        self.line = line
        self.value = value
        where = ''
        if self.path is not None:
            where = self.path + (f':{line}' if line is not None else '') + ': '
        text = f'{where}{message}'
        if value is not None or has_value:
            text += f': {value!r}'
        super().__init__(text)


class ConfigError(UserInputError):
    """A bad configuration value or command-line option; the message names the option."""


class TrainingDiverged(RuntimeError):
    """Training produced a non-finite loss (not bad input: the CLI exits with status 1); the message names the
    epoch, the batch and what was kept."""


class TrainingInterrupted(RuntimeError):
    """Training was stopped by SIGINT (Ctrl-C) after saving its state; the message says how to resume (the CLI
    exits with status 130)."""

