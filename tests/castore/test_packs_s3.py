"""S3PackStore against a real SeaweedFS: what the conformance suite cannot say of every backend
(requests sent, conditional puts racing, a store that is down, URL validation)."""

from __future__ import annotations

import socket
import threading
import time

import obstore
import pytest

from castore.errors import BackendError, CorruptionError, ValidationError
from castore.storage.packs import pack_name
from castore.storage.packs_s3 import COALESCE, S3PackStore, parse_url
from tests.castore.test_packstore_conformance import pack
from tests.services.seaweed import running_seaweedfs


def test_requests_are_counted_by_operation_and_close_ranges_share_one_get(s3_url: str) -> None:
    packs = S3PackStore(s3_url)
    name, data = pack(1, 3 * COALESCE)
    packs.put(name, data)
    assert packs.requests == {"put": 1}
    close = [(0, 100), (4096, 100), (COALESCE - 10, 20)]
    assert packs.read(name, close) == [data[o:o + n] for o, n in close]
    assert packs.requests["get"] == 1
    apart = [(0, 10), (2 * COALESCE + 5, 10), (COALESCE + 1, 0)]
    assert packs.read(name, apart) == [data[o:o + n] for o, n in apart]
    assert packs.requests["get"] == 3  # two spans more than COALESCE apart; the empty range costs nothing
    assert list(packs.list()) == [(name, len(data))]
    packs.delete(name)
    assert packs.requests == {"put": 1, "get": 3, "list": 1, "delete": 1}


def test_a_put_never_overwrites_a_stored_object(s3_url: str) -> None:
    packs = S3PackStore(s3_url)
    name, data = pack(2)
    packs.put(name, data)
    packs.put(name, b"other bytes under the same name")  # what a bug or a bad actor would send
    assert packs.read(name, [(0, len(data))]) == [data]


def test_concurrent_putters_of_one_pack_all_succeed_and_it_is_stored_once(s3_url: str) -> None:
    stores = [S3PackStore(s3_url) for _ in range(8)]
    name, data = pack(3, 4 << 20)
    start = threading.Barrier(len(stores))
    errors: list[BaseException] = []

    def put(store: S3PackStore) -> None:
        start.wait()
        try:
            store.put(name, data)
        except BaseException as error:  # noqa: BLE001  (collected, asserted below)
            errors.append(error)

    threads = [threading.Thread(target=put, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert list(stores[0].list()) == [(name, len(data))]
    assert pack_name(stores[0].read(name, [(0, len(data))])[0]) == name


def test_a_range_starting_past_the_end_is_corruption_not_a_backend_error(s3_url: str) -> None:
    packs = S3PackStore(s3_url)
    name, data = pack(4, 1000)
    packs.put(name, data)
    with pytest.raises(CorruptionError, match="truncated"):
        packs.read(name, [(5000, 10)])


def test_an_unreachable_endpoint_is_a_one_line_backend_error(s3_url: str, monkeypatch) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    packs = S3PackStore(s3_url)
    name, data = pack(5, 100)
    began = time.monotonic()
    for attempt in (lambda: packs.put(name, data), lambda: packs.read(name, [(0, 10)]),
                    lambda: list(packs.list()), lambda: packs.delete(name)):
        with pytest.raises(BackendError) as error:
            attempt()
        assert f"127.0.0.1:{port}" in str(error.value) and "\n" not in str(error.value)
    assert time.monotonic() - began < 60


def test_a_killed_server_is_a_backend_error_not_corruption(monkeypatch) -> None:
    with running_seaweedfs() as weed:
        for variable, value in weed.env.items():
            monkeypatch.setenv(variable, value)
        packs = S3PackStore("s3://cairn-test/killed")
        name, data = pack(6)
        packs.put(name, data)
        assert packs.read(name, [(0, 10)]) == [data[:10]]
        weed.kill()
        with pytest.raises(BackendError, match="could not read pack"):
            packs.read(name, [(0, 10)])


def test_the_endpoint_and_credentials_come_from_the_environment_only(s3_url: str, monkeypatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    with pytest.raises(BackendError):
        S3PackStore(s3_url).put(*pack(7, 10))


@pytest.mark.parametrize("url, bucket, prefix", [
    ("s3://bucket", "bucket", ""),
    ("s3://bucket/", "bucket", ""),
    ("s3://my.bucket-1/a/b/", "my.bucket-1", "a/b"),
    ("s3://bucket//a//b", "bucket", "a/b"),
])
def test_an_s3_url_names_a_bucket_and_an_optional_prefix(url: str, bucket: str, prefix: str) -> None:
    assert parse_url(url) == (bucket, prefix)


@pytest.mark.parametrize("url", [
    "s3://", "s3:///prefix", "file:///bucket", "bucket/prefix", "s3://Bucket", "s3://ab",
    "s3://key:secret@bucket/p", "s3://bucket:9000/p", "s3://bucket/p?endpoint=http://x",
    "s3://bucket/a/../b", "s3://-bucket",
])
def test_a_bad_s3_url_is_a_validation_error(url: str) -> None:
    with pytest.raises(ValidationError):
        parse_url(url)


def test_objects_are_laid_out_under_the_prefix_by_the_first_two_hex_digits(s3_url: str, seaweedfs) -> None:
    packs = S3PackStore(s3_url)
    name, data = pack(8, 10)
    packs.put(name, data)
    whole_bucket = obstore.store.S3Store("cairn-test")
    prefix = s3_url.split("/", 3)[3]
    keys = [meta["path"] for page in obstore.list(whole_bucket, prefix + "/") for meta in page]
    assert keys == [f"{prefix}/packs/{name[:2]}/{name}"]
