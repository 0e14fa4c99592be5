"""Access to a gRPC server (castore/grpc_auth.py, castore/grpc_serve.py), with real servers and
clients opened by URL: bearer tokens, read-only, TLS, the unix socket's mode."""

from __future__ import annotations

import datetime
import ipaddress
import os
import stat
from pathlib import Path
from typing import Iterator

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from castore.blobs.memory import MemoryBlobService
from castore.digest import B3Digest
from castore.directories.memory import MemoryDirectoryService
from castore.errors import BackendError, ValidationError
from castore.grpc_auth import Access, AccessInterceptor
from castore.grpc_serve import RunningServer, TlsIdentity, serve
from castore.grpc_server import castore_services
from castore.proto import rpc_blobstore_pb2 as bpb
from castore.url import ENV_CA, ENV_TOKEN, grpc_target, open_castore
from tests.castore.conftest import free_port

TOKEN = "s3cret-token"


def start(url: str, access: Access = Access(), **options) -> RunningServer:
    blobs = MemoryBlobService()
    with blobs.open_write() as writer:
        writer.write(b"readable")
        writer.close()
    return serve(url, [castore_services(blobs, MemoryDirectoryService())],
                 interceptors=[AccessInterceptor(access)], **options)


@pytest.fixture
def unix_url(short_dir: Path) -> str:
    return f"grpc+unix://{short_dir}/castore.sock"


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    return path


def can_read(url: str) -> bool:
    """Every read a client makes: Tvix's Stat and recursive Get, and Cairn's ReadMany and GetClosure."""
    with open_castore(url) as client:
        [contents] = client.blobs.read_many([B3Digest.of(b"readable")])
        assert contents is None or b"".join(contents) == b"readable"
        assert list(client.directories.get_recursive(B3Digest.of(b"no directory"))) == []
        return client.blobs.has(B3Digest.of(b"readable"))


def write(url: str) -> B3Digest:
    with open_castore(url) as client, client.blobs.open_write() as writer:
        writer.write(b"written")
        return writer.close()


@pytest.fixture
def guarded(unix_url: str, request) -> Iterator[str]:
    running = start(unix_url, Access(TOKEN, for_reads=getattr(request, "param", False)))
    yield unix_url
    running.stop(grace=None)


def test_writes_need_the_token_and_reads_stay_open(guarded: str, token_file: Path, monkeypatch) -> None:
    monkeypatch.delenv(ENV_TOKEN, raising=False)
    assert can_read(guarded)
    with pytest.raises(BackendError, match="UNAUTHENTICATED.*needs a token"):
        write(guarded)
    assert write(f"{guarded}?token-file={token_file}") == B3Digest.of(b"written")
    monkeypatch.setenv(ENV_TOKEN, TOKEN)
    assert write(guarded) == B3Digest.of(b"written")
    monkeypatch.setenv(ENV_TOKEN, "a guess")
    with pytest.raises(BackendError, match="UNAUTHENTICATED: wrong token"):
        write(guarded)


@pytest.mark.parametrize("guarded", [True], indirect=True)
def test_with_token_for_reads_every_call_needs_it(guarded: str, monkeypatch) -> None:
    monkeypatch.delenv(ENV_TOKEN, raising=False)
    with pytest.raises(BackendError, match="UNAUTHENTICATED"):
        can_read(guarded)
    monkeypatch.setenv(ENV_TOKEN, TOKEN)
    assert can_read(guarded)


@pytest.mark.parametrize("metadata", [(), (("authorization", TOKEN),), (("authorization", "Basic " + TOKEN),),
                                      (("authorization", "Bearer " + TOKEN[:-1]),)])
def test_a_call_without_the_exact_bearer_token_is_unauthenticated(guarded: str, metadata) -> None:
    with grpc.insecure_channel(grpc_target(guarded)) as channel:
        put = channel.stream_unary("/snix.castore.v1.BlobService/Put", bpb.BlobChunk.SerializeToString,
                                   bpb.PutBlobResponse.FromString)
        with pytest.raises(grpc.RpcError) as e:
            put(iter([bpb.BlobChunk(data=b"x")]), metadata=metadata)
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert put(iter([bpb.BlobChunk(data=b"x")]), metadata=(("authorization", "Bearer " + TOKEN),)).digest


def test_read_only_refuses_writes_whoever_asks(unix_url: str, monkeypatch) -> None:
    running = start(unix_url, Access(TOKEN, read_only=True))
    try:
        monkeypatch.setenv(ENV_TOKEN, TOKEN)
        assert can_read(unix_url)
        with pytest.raises(BackendError, match="PERMISSION_DENIED: this daemon is read-only"):
            write(unix_url)
    finally:
        running.stop(grace=None)


def test_a_token_file_must_hold_a_token(unix_url: str, tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ValidationError, match="is empty"):
        open_castore(f"{unix_url}?token-file={tmp_path}/empty")
    with pytest.raises(ValidationError, match="cannot read token file"):
        open_castore(f"{unix_url}?token-file={tmp_path}/missing")
    with pytest.raises(ValidationError, match="unknown parameter 'tokenfile'"):
        open_castore(f"{unix_url}?tokenfile=x")


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for localhost and 127.0.0.1, and its key (PEM files)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def test_tls_with_the_ca_from_the_url_or_ssl_cert_file(tmp_path: Path, token_file: Path, monkeypatch) -> None:
    cert_file, key_file = self_signed(tmp_path)
    url = f"grpc+https://localhost:{free_port()}"
    running = start(url, Access(TOKEN), tls=TlsIdentity.load(str(cert_file), str(key_file)))
    try:
        assert write(f"{url}?ca={cert_file}&token-file={token_file}") == B3Digest.of(b"written")
        monkeypatch.setenv(ENV_CA, str(cert_file))
        assert can_read(url)
        monkeypatch.delenv(ENV_CA)
        with pytest.raises(BackendError, match="UNAVAILABLE"):  # grpcio's own roots do not know it
            can_read(url)
        with pytest.raises(BackendError, match="UNAVAILABLE"):  # plaintext to a TLS port
            can_read(url.replace("grpc+https", "grpc+http"))
    finally:
        running.stop(grace=None)


def test_tls_and_grpc_https_go_together(tmp_path: Path, unix_url: str) -> None:
    cert_file, key_file = self_signed(tmp_path)
    with pytest.raises(ValidationError, match="go together"):
        start(unix_url, tls=TlsIdentity.load(str(cert_file), str(key_file)))
    with pytest.raises(ValidationError, match="go together"):
        start(f"grpc+https://localhost:{free_port()}")
    with pytest.raises(ValidationError, match="cannot read TLS key"):
        TlsIdentity.load(str(cert_file), str(tmp_path / "missing"))


@pytest.mark.parametrize("mode", [0o600, 0o660, 0o666])
def test_the_socket_gets_the_mode_asked_for(unix_url: str, short_dir: Path, mode: int) -> None:
    umask = os.umask(0o022)
    try:
        running = start(unix_url, socket_mode=mode)
    finally:
        os.umask(umask)
    try:
        assert stat.S_IMODE(os.stat(short_dir / "castore.sock").st_mode) == mode
        assert can_read(unix_url)
    finally:
        running.stop(grace=None)
    with pytest.raises(ValidationError, match="grpc\\+unix"):
        start(f"grpc+http://127.0.0.1:{free_port()}", socket_mode=0o600)
