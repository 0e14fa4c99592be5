"""Fixtures of the conformance suites: each test runs once per entry of backends.BACKENDS."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Iterator

import pytest

from castore.blobs.service import BlobService
from castore.directories.service import DirectoryService
from store.pathinfo.service import PathInfoService
from store.url import Store
from tests.conformance.backends import BACKENDS, Backend


def _bound(request) -> Backend:
    """The backend named by the test's parameter, its servers' fixtures bound to `open`."""
    backend = BACKENDS[request.param]
    servers = {name: request.getfixturevalue(name) for name in backend.needs}
    return dataclasses.replace(backend, open=functools.partial(backend.open, **servers))


@pytest.fixture(params=list(BACKENDS))
def backend(request) -> Backend:
    return _bound(request)


@pytest.fixture(params=[name for name, b in BACKENDS.items() if b.durable])
def durable(request) -> Backend:
    """A backend that keeps what it acknowledged across a close and a reopen."""
    return _bound(request)


@pytest.fixture
def store(backend: Backend, tmp_path: Path) -> Iterator[Store]:
    """A fresh store of the backend, open for the test."""
    with backend.open(tmp_path) as opened:
        yield opened


@pytest.fixture
def blobs(store: Store) -> BlobService:
    return store.castore.blobs


@pytest.fixture
def directories(store: Store) -> DirectoryService:
    return store.castore.directories


@pytest.fixture
def pathinfo(store: Store) -> PathInfoService:
    return store.pathinfo
