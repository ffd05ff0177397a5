r"""Argument checks shared by the library's configuration dataclasses and layers.

Each raises :class:`ValueError` whose message starts with the argument's Python name
(``"num_layers: must be non-negative, got -1"``). The application on top (:mod:`pyg_diffcl.training`, the
CLI) adds the configuration section in front (``model.num_layers: ...``), so a command-line user reads the
key that ``--set`` takes.
"""
from __future__ import annotations

import math
from typing import Any, Iterable


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> None:
    """:obj:`value` must be one of :obj:`choices`."""
    choices = list(choices)
    if value not in choices:
        raise ValueError(f'{name}: must be one of {choices}, got {value!r}')


def check_positive(name: str, value: Any, allow_none: bool = False) -> None:
    """:obj:`value` must be a number > 0 (or :obj:`None` where :obj:`allow_none`)."""
    if value is None and allow_none:
        return
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f'{name}: must be positive{" (or None)" if allow_none else ""}, got {value!r}')


def check_non_negative(name: str, value: Any, allow_none: bool = False) -> None:
    """:obj:`value` must be a finite number >= 0 (or :obj:`None` where :obj:`allow_none`)."""
    if value is None and allow_none:
        return
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
        what = 'non-negative' if isinstance(value, int) and not isinstance(value, bool) else 'a non-negative number'
        raise ValueError(f'{name}: must be {what}, got {value!r}')


def check_probability(name: str, value: Any) -> None:
    """:obj:`value` must lie in :math:`[0, 1)` (a dropout rate)."""
    if not (isinstance(value, (int, float)) and 0.0 <= value < 1.0):
        raise ValueError(f'{name}: must be in [0, 1), got {value!r}')


class Validated:
    """Mixin of the configuration dataclasses: :meth:`validate` runs when one is built (a dataclass calls
    ``__post_init__``) and whenever a model or the application asks again."""
    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every value; raises :class:`ValueError` naming the field."""
