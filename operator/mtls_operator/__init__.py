"""mtls-operator: runs the whole life of mutual-TLS client certificates on Kubernetes."""

__version__ = "0.2.0"

GROUP = "mtls.dev"
VERSION = "v1alpha1"
PLURAL = "mtlscertificates"
KIND = "MtlsCertificate"
