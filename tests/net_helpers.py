"""Helpers for the networking tests (sockets, servers, datagrams, subprocesses, TLS)."""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import pytest
from loop_helpers import run_until_done

T = TypeVar("T")


def run(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T], guard: float = 10.0) -> T:
    """Run `coro` as a task on `loop` to completion (cancelled after `guard` seconds)."""
    result: T = run_until_done(loop, loop.create_task(coro), guard)
    return result


async def settle() -> None:
    """Wait for every other task of the running loop (a server's half-made connections)."""
    others = asyncio.all_tasks() - {asyncio.current_task()}
    await asyncio.gather(*others, return_exceptions=True)


def has_ipv6() -> bool:
    """Whether a socket can be bound to ::1 here."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@contextmanager
def unix_path(name: str = "sock") -> Iterator[str]:
    """A fresh path for a Unix socket (short: sun_path is limited to 108 bytes)."""
    with tempfile.TemporaryDirectory(prefix="sl-") as tmp:
        yield os.path.join(tmp, name)


def open_fds() -> set[int]:
    """The fds open in this process right now."""
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


def describe_fds(fds: set[int]) -> list[str]:
    """What each fd is (for a leak report)."""
    out = []
    for fd in sorted(fds):
        try:
            out.append(f"{fd} -> {os.readlink(f'/proc/self/fd/{fd}')}")
        except OSError:
            out.append(f"{fd} -> ?")
    return out


@pytest.fixture(scope="module", autouse=True)
def no_leaked_fds() -> Iterator[None]:
    """Fail the module if it leaves fds open (imported by each networking test module)."""
    import gc

    gc.collect()
    before = open_fds()
    yield
    gc.collect()
    leaked = open_fds() - before
    if leaked:
        pytest.fail(f"fds leaked by this module: {describe_fds(leaked)}", pytrace=False)


class Collector(asyncio.Protocol):
    """A stream protocol that records what happens to it, for assertions."""

    def __init__(self, loop: asyncio.AbstractEventLoop, keep_open: bool = False) -> None:
        self.keep_open = keep_open  # what eof_received returns: stay half-open?
        self.transport: asyncio.Transport | None = None
        self.data = bytearray()
        self.events: list[str] = []
        self.made: asyncio.Future[None] = loop.create_future()
        self.lost: asyncio.Future[BaseException | None] = loop.create_future()
        self.eof: asyncio.Future[None] = loop.create_future()
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self.loop = loop

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # or a pipe's half transport
        self.events.append("made")
        self.made.set_result(None)

    def data_received(self, data: bytes) -> None:
        self.data += data
        self._wake()

    def eof_received(self) -> bool | None:
        self.events.append("eof")
        self.eof.set_result(None)
        return self.keep_open

    def pause_writing(self) -> None:
        self.events.append("pause_writing")

    def resume_writing(self) -> None:
        self.events.append("resume_writing")

    def connection_lost(self, exc: BaseException | None) -> None:
        self.events.append("lost")
        if not self.eof.done():
            self.eof.cancel()
        self.lost.set_result(exc)
        self._wake()

    async def wait_for(self, n: int) -> bytes:
        """Wait until at least `n` bytes arrived (or the connection is lost)."""
        while len(self.data) < n and not self.lost.done():
            fut: asyncio.Future[None] = self.loop.create_future()
            self._waiters.append((n, fut))
            await fut
        return bytes(self.data)

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for _, fut in waiters:
            if not fut.done():
                fut.set_result(None)


class Certs:
    """A throwaway CA, a server certificate for localhost/127.0.0.1/::1 and a client
    certificate, written as PEM files into `directory` (see `make_certs`)."""

    def __init__(self, directory: str) -> None:
        self.ca = os.path.join(directory, "ca.pem")
        self.server_cert = os.path.join(directory, "server.pem")
        self.server_key = os.path.join(directory, "server.key")
        self.client_cert = os.path.join(directory, "client.pem")
        self.client_key = os.path.join(directory, "client.key")

    def server_context(self, require_client_cert: bool = False) -> Any:
        import ssl

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.server_cert, self.server_key)
        if require_client_cert:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(self.ca)
        return ctx

    def client_context(self, with_cert: bool = False) -> Any:
        import ssl

        ctx = ssl.create_default_context(cafile=self.ca)
        if with_cert:
            ctx.load_cert_chain(self.client_cert, self.client_key)
        return ctx


def make_certs(directory: str) -> Certs:
    """Generate the certificates of `Certs` with the `cryptography` package (EC P-256: fast)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    certs = Certs(directory)
    now = datetime.datetime.now(datetime.timezone.utc)

    def name(common: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "steploop tests"),
                x509.NameAttribute(NameOID.COMMON_NAME, common),
            ]
        )

    def write_key(key: ec.EllipticCurvePrivateKey, path: str) -> None:
        with open(path, "wb") as f:
            f.write(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )

    def write_cert(cert: x509.Certificate, path: str) -> None:
        with open(path, "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = name("steploop test CA")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    write_cert(ca, certs.ca)

    def leaf(common: str, usage: x509.ObjectIdentifier, cert_path: str, key_path: str) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(common))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
        )
        if usage == ExtendedKeyUsageOID.SERVER_AUTH:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                        x509.IPAddress(ipaddress.ip_address("::1")),
                    ]
                ),
                critical=False,
            )
        write_cert(builder.sign(ca_key, hashes.SHA256()), cert_path)
        write_key(key, key_path)

    leaf("localhost", ExtendedKeyUsageOID.SERVER_AUTH, certs.server_cert, certs.server_key)
    leaf("client", ExtendedKeyUsageOID.CLIENT_AUTH, certs.client_cert, certs.client_key)
    return certs
