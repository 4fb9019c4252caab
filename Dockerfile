# edgebench sensor service. Build: docker compose build (see docker-compose.yml).
# Runs under mem_limit 50m / cpus 0.5, so the image stays small and one process.

# BASE_IMAGE: the official slim image by default; where no registry answers,
# `make images-offline` imports a local stand-in under this same tag.
ARG BASE_IMAGE=python:3.11.11-alpine3.21
FROM ${BASE_IMAGE} AS build
WORKDIR /build
COPY service/requirements.txt .
RUN pip install --no-cache-dir --prefix=/install -r requirements.txt

FROM ${BASE_IMAGE}
ARG SENSOR_VARIANT=optimized
ENV SENSOR_VARIANT=$SENSOR_VARIANT \
    SENSOR_HOST=0.0.0.0 \
    SENSOR_PORT=8000 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=build /install /usr/local
WORKDIR /app
COPY --chown=root:root plumbing/ ./plumbing/
COPY --chown=root:root service/ ./service/
# the collector comparison's scrape target (loadtests/synthetic_target.py) runs from this
# image too: it and the package's __init__ and spec.py, stdlib and plumbing only
COPY --chown=root:root loadtests/__init__.py loadtests/spec.py loadtests/synthetic_target.py ./loadtests/
USER 10001
EXPOSE 8000
# busybox wget, not a second Python interpreter inside the 50 MB / 0.5 CPU limit
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
  CMD ["wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8000/healthz"]
CMD ["python", "-m", "service"]
