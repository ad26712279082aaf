"""PKI primitives built on `cryptography` only. Nothing in this package knows about Kubernetes."""
