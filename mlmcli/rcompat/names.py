"""R's reserved words (?Reserved): a name that is one is not syntactic, so deparse() quotes it in
backticks and make.names() appends a dot."""

from __future__ import annotations

RESERVED = frozenset(
    {
        "if",
        "else",
        "repeat",
        "while",
        "function",
        "for",
        "next",
        "break",
        "TRUE",
        "FALSE",
        "NULL",
        "Inf",
        "NaN",
        "NA",
        "NA_integer_",
        "NA_real_",
        "NA_character_",
        "NA_complex_",
        "in",
    }
)
