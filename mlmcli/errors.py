"""Errors a user can cause: each becomes one line on stderr and exit code 2."""

from __future__ import annotations


class MlmError(Exception):
    """A problem with the user's input, worded for the user."""


class FormulaError(MlmError):
    """A formula that does not parse; `position` is the 0-based character offset."""

    def __init__(self, message: str, formula: str = "", position: int | None = None) -> None:
        self.formula = formula
        self.position = position
        if position is not None and formula:
            message = f"{message} at position {position + 1}: {formula[:position]}>>>{formula[position:]}"
        super().__init__(message)


class DataError(MlmError):
    """Data that cannot be used as asked: unknown column, non-numeric response, ..."""


class FitError(MlmError):
    """A model that cannot be fitted to the data (the criterion is undefined everywhere tried)."""
