"""Typed errors of castore; the gRPC and CLI edges map them to status codes and exit lines."""


class CastoreError(Exception):
    """Base of every error castore raises on purpose."""


class ValidationError(CastoreError, ValueError):
    """Input that breaks the data model (bad name, unsorted list, wrong digest length...)."""


class NotFoundError(CastoreError, LookupError):
    """A blob, chunk or directory the store does not hold."""


class CorruptionError(CastoreError):
    """Stored data that no longer matches its digest: reported, never returned."""


class BackendError(CastoreError):
    """A backend that could not answer (remote unreachable, I/O failure)."""
