# The savgan API image: FastAPI + uvicorn, no torch.
#
# The API only validates requests, streams uploads to object storage, queues jobs by task name
# and signs links; every model computation happens in the workers. Torch (about 1 GB CPU, 5+ GB
# CUDA) is therefore deliberately absent: the build fails if the API code path imports it.
#
#   docker build -f docker/api.Dockerfile -t savgan-api .
#
# Base image: pinned by version tag. At release, pin the digest as well
# (python:3.11.14-slim-trixie@sha256:...; `docker buildx imagetools inspect` prints it), so a
# rebuild months later uses byte-identical layers.
ARG PYTHON_IMAGE=python:3.11.14-slim-trixie

# ---- build: a virtual environment with the pinned dependencies and the savgan wheel ----------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first: this layer is reused until the lock changes. --no-deps: the list is the
# whole closure, its versions from constraints.txt (the lock the tests install from); pip check
# proves it complete. --no-compile: no .pyc files in the image (PYTHONDONTWRITEBYTECODE is set, so
# none would be written at run time either); the API compiles what it imports at start, in about
# a second. No video decoder either: uploads are probed from their container headers
# (savgan.model.data.video_probe), only the workers decode.
COPY constraints.txt docker/requirements-api.txt /tmp/build/
RUN python -c "import sys; assert (3, 11, 3) <= sys.version_info[:3] < (3, 12), f'savgan needs Python 3.11.3+, not {sys.version}'" \
    && pip install --no-cache-dir --no-compile --no-deps -c /tmp/build/constraints.txt -r /tmp/build/requirements-api.txt \
    && pip check
COPY pyproject.toml README.md ./
COPY model/ model/
COPY cli/ cli/
COPY common/ common/
COPY worker/ worker/
COPY service/ service/
# --no-deps: the project's own dependencies include torch, which this image must not have.
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /tmp/wheels . \
    && pip install --no-cache-dir --no-compile --no-deps /tmp/wheels/savgan-*.whl

# ---- runtime ----------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="savgan-api" \
      org.opencontainers.image.description="SAVGAN video synthesis service: HTTP API (no torch)" \
      org.opencontainers.image.licenses="MIT"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SAVGAN_MODE=distributed
COPY --from=build /opt/venv /opt/venv
# The proof that the API never needs torch or ffmpeg: neither is installed, and the modules the
# `savgan serve` command loads import cleanly without them (a stray import fails the build).
RUN python -c "import importlib.util as u; assert u.find_spec('torch') is None and u.find_spec('imageio_ffmpeg') is None, 'torch and imageio-ffmpeg must not be in the API image'" \
    && python -c "import sys, savgan.service.server, savgan.worker.app; assert 'torch' not in sys.modules" \
    && savgan serve --help > /dev/null
RUN groupadd --system --gid 10001 savgan \
    && useradd --system --uid 10001 --gid savgan --home-dir /home/savgan --create-home \
       --shell /usr/sbin/nologin savgan
WORKDIR /home/savgan
USER 10001:10001
EXPOSE 8000
# Liveness only (/livez): the process answers. Readiness (Redis, storage, a worker) is /readyz,
# which an orchestrator should use for routing, not for restarting the container.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/livez', timeout=4).status == 200 else 1)"]
CMD ["savgan", "serve", "--host", "0.0.0.0", "--port", "8000"]
