"""mtls-operator: runs the whole life of mutual-TLS client certificates on Kubernetes.

The package is layered; see ARCHITECTURE.md. This module holds the version only, so importing it costs nothing.
"""

__version__ = "0.2.0"
