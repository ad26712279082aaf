"""A TCP forwarder from a host loopback port into a network namespace: how the host reaches a node plane's apiserver.

    python forward.py --listen=127.0.0.1:PORT --netns=/run/netns/NAME --to=127.0.0.1:PORT

The listening socket is opened first, in the host's namespace; then the process joins the node's namespace, so every
socket it opens from then on (the upstream connections) lives there. Nothing is dialled outside that namespace, and
on the host only loopback is listened on. TLS passes through untouched: clients verify the apiserver itself.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import socket
import threading

CLONE_NEWNET = 0x40000000


def join_netns(path: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns({path}): {os.strerror(errno)}")
    finally:
        os.close(fd)


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (sink, source):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _serve(client: socket.socket, upstream_address: tuple[str, int]) -> None:
    try:
        upstream = socket.create_connection(upstream_address, timeout=10)
    except OSError:
        client.close()
        return
    upstream.settimeout(None)
    threading.Thread(target=_pipe, args=(upstream, client), daemon=True).start()
    _pipe(client, upstream)
    client.close()
    upstream.close()


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listen", required=True, type=_address)
    parser.add_argument("--netns", required=True)
    parser.add_argument("--to", required=True, type=_address)
    args = parser.parse_args()
    host, _ = args.listen
    if not host.startswith("127."):
        raise SystemExit("forward.py listens on loopback only")
    listener = socket.create_server(args.listen, reuse_port=False, backlog=128)
    join_netns(args.netns)  # from here on, new sockets are the node namespace's
    while True:
        client, _ = listener.accept()
        threading.Thread(target=_serve, args=(client, args.to), daemon=True).start()


if __name__ == "__main__":
    main()
