"""Fixtures of the conformance suites: each test runs once per entry of backends.BACKENDS."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from castore.blobs.service import BlobService
from castore.directories.service import DirectoryService
from store.pathinfo.service import PathInfoService
from store.url import Store
from tests.conformance.backends import BACKENDS, Backend


@pytest.fixture(params=list(BACKENDS))
def backend(request) -> Backend:
    return BACKENDS[request.param]


@pytest.fixture(params=[name for name, b in BACKENDS.items() if b.durable])
def durable(request) -> Backend:
    """A backend that keeps what it acknowledged across a close and a reopen."""
    return BACKENDS[request.param]


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
