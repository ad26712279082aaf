"""Kubernetes I/O, no decisions: objects, the client, the Secret cache, API health, start-up."""
