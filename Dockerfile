# syntax=docker/dockerfile:1
# keycloak-monitor: the operator (`keycloak-monitor run`) and the standalone exporter
# (`keycloak-monitor standalone`). Build: docker build -t ghcr.io/keycloak-monitor/keycloak-monitor:0.1.0 .

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
RUN python -m venv /opt/keycloak-monitor
ENV PATH=/opt/keycloak-monitor/bin:$PATH
WORKDIR /src
# Only what the package needs (see .dockerignore): pyproject.toml, README.md, the exact
# dependency versions (constraints.txt, tested by make test), operator/.
COPY pyproject.toml README.md constraints.txt ./
COPY operator/ operator/
RUN pip install --upgrade pip setuptools wheel \
 && pip install --constraint constraints.txt . \
 && keycloak-monitor --help > /dev/null

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="keycloak-monitor" \
      org.opencontainers.image.description="Kubernetes operator that turns Keycloak's Admin REST API into Prometheus metrics" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/keycloak-monitor/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN groupadd --system --gid 10001 keycloak-monitor \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin keycloak-monitor
COPY --from=build /opt/keycloak-monitor /opt/keycloak-monitor
# Numeric, so that Kubernetes' runAsNonRoot can verify it without a passwd lookup.
USER 10001:10001
WORKDIR /tmp
EXPOSE 9091
ENTRYPOINT ["keycloak-monitor"]
CMD ["run", "--all-namespaces"]
