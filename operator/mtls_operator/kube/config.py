"""How we reach the API: the client configuration, and clients that fail within their own timeout."""

from __future__ import annotations

import copy

import kubernetes


def client_without_retries(configuration: kubernetes.client.Configuration) -> kubernetes.client.ApiClient:
    """For calls that must fail within their own timeout (health probe, leader election): urllib3 retries a timed-out
    read three times by default, four times the timeout for one silent request."""
    config = copy.deepcopy(configuration)
    config.retries = False
    return kubernetes.client.ApiClient(config)


def load_client_config() -> None:
    """In-cluster service account when running in a pod, else KUBECONFIG / ~/.kube/config."""
    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()
