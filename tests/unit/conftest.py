"""Unit-test fixtures (no cluster)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from harness.pki import make_ca


@pytest.fixture(scope="session")
def ca() -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    return make_ca()


@pytest.fixture(scope="session")
def other_ca() -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    return make_ca("Other CA")


@pytest.fixture(scope="session")
def client_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(65537, 2048)


@pytest.fixture(scope="session")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Accepts connections, reads what comes, never writes a byte back."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    connections: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            connections.append(connection)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for connection in connections:  # the stuck requests fail now, which frees their threads
            connection.close()
        server.close()
