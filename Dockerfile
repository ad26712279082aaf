# syntax=docker/dockerfile:1
# The base is an argument so a machine without a registry can build on a stand-in (hack/standin-base.sh); releases
# use the default, the pinned official image.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# Build stage: wheels for the operator and its dependencies (compilers stay here).
FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ operator/
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# Final stage: no compilers, no caches, non-root (UID/GID 10001, the same as the Helm chart).
FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN groupadd --system --gid 10001 mtls && useradd --system --uid 10001 --gid 10001 --no-create-home mtls
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels /wheels/mtls_operator-*.whl
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["mtls-operator", "run"]
CMD ["--all-namespaces"]
