"""Typed errors of the Nix-format parsers; all are ValidationErrors, so edges map them to 'bad input'."""

from castore.errors import ValidationError


class NarError(ValidationError):
    """A NAR stream that breaks the grammar or the canonical form (SPEC 5, NAR)."""


class NarinfoError(ValidationError):
    """A narinfo document that cannot be parsed or misses a required field."""
