"""Unit-test fixtures (no cluster)."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from harness.pki import make_ca
from harness.softhsm import UNIT_PIN, SoftHSM, find_module


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


@pytest.fixture(scope="session")
def hsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHSM]:
    """One SoftHSM2 for the whole run: the library reads SOFTHSM2_CONF once, when this process first initialises
    it, so every test module must share it. Tokens: ca-token (RSA key rsa-ca), ec-token (ECDSA P-256 key ec-ca),
    other-token (RSA key other-ca); each CA certificate is <key>.crt in hsm.root."""
    module = find_module()
    if module is None:
        pytest.skip("SoftHSM2 is not installed (make deps installs it)")
    hsm = SoftHSM.create(tmp_path_factory.mktemp("softhsm"), module)
    os.environ["SOFTHSM2_CONF"] = str(hsm.conf)
    for token in ("ca-token", "ec-token", "other-token"):
        hsm.init_token(token, UNIT_PIN)
    hsm.make_ca("ca-token", UNIT_PIN, "rsa-ca", hsm.root / "rsa-ca.crt")
    hsm.make_ca("ec-token", UNIT_PIN, "ec-ca", hsm.root / "ec-ca.crt", kind="ECDSA")
    hsm.make_ca("other-token", UNIT_PIN, "other-ca", hsm.root / "other-ca.crt")
    yield hsm
