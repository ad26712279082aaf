"""Test harness shared by unit tests, e2e tests and the benchmarks (on sys.path through pytest's `pythonpath`).

- fakekube: an in-memory implementation of the client interface the lifecycle uses (kube.client.KubeIO).
- lifecycle: builders of MtlsCertificate bodies and a driver that reconciles one against FakeKube.
"""
