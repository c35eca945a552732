# syntax=docker/dockerfile:1
# The savgan Celery worker image, two targets:
#
#   gpu (default: the last stage): the official CUDA PyTorch runtime image; its torch
#                  (CUDA 12.8, cuDNN 9) is kept as it is, never replaced by a PyPI wheel.
#     docker build -f docker/worker.Dockerfile --target gpu -t savgan-worker .
#   cpu:           python slim + the CPU-only torch wheel (about 1/5 of the size), for hosts
#                  without an NVIDIA GPU (compose profile `cpu`).
#     docker build -f docker/worker.Dockerfile --target cpu -t savgan-worker-cpu .
#
# Both run one prefork child per container (--concurrency 1): one worker per GPU; scale with
# more containers, each pinned to its own GPU.
#
# Base images are pinned by version tag; at release pin the digests as well
# (IMAGE:TAG@sha256:..., `docker buildx imagetools inspect IMAGE:TAG` prints them).
# TORCH_VERSION of the cpu target follows the torch of PYTORCH_IMAGE, so both variants compute
# with the same library version; change them together.
ARG PYTORCH_IMAGE=pytorch/pytorch:2.10.0-cuda12.8-cudnn9-runtime
ARG PYTHON_IMAGE=python:3.11.14-slim-trixie

# ---- wheel: the savgan wheel, built once for both targets ------------------------------------
FROM ${PYTHON_IMAGE} AS wheel
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY model/ model/
COPY cli/ cli/
COPY common/ common/
COPY worker/ worker/
COPY service/ service/
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# ---- cpu: python slim + CPU-only torch ---------------------------------------------------------
FROM ${PYTHON_IMAGE} AS cpu
ARG TORCH_VERSION=2.10.0
LABEL org.opencontainers.image.title="savgan-worker-cpu" \
      org.opencontainers.image.description="SAVGAN video synthesis service: Celery worker (CPU only)" \
      org.opencontainers.image.licenses="MIT"
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    SAVGAN_MODE=distributed \
    SAVGAN_DEVICE=cpu \
    SAVGAN_WORKER_MODEL_CACHE_DIR=/var/cache/savgan/models
COPY docker/requirements-api.txt docker/requirements-worker.txt /tmp/requirements/
COPY --from=wheel /wheels /tmp/wheels
# The pinned lists first (--no-deps), then the CPU torch wheel from PyTorch's CPU index (its own
# small dependencies come along; those already pinned stay), then the project without deps.
RUN pip install --no-cache-dir --no-deps \
       -r /tmp/requirements/requirements-api.txt -r /tmp/requirements/requirements-worker.txt \
    && pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu "torch==${TORCH_VERSION}" \
    && pip install --no-cache-dir --no-deps /tmp/wheels/savgan-*.whl \
    && pip check \
    && python -c "import torch; assert not torch.cuda.is_available(); print('torch', torch.__version__)" \
    && python -c "import savgan.worker.tasks, savgan.model.generate, savgan.model.train" \
    && rm -rf /tmp/requirements /tmp/wheels
RUN groupadd --system --gid 10001 savgan \
    && useradd --system --uid 10001 --gid savgan --home-dir /home/savgan --create-home \
       --shell /usr/sbin/nologin savgan \
    && mkdir -p /var/cache/savgan/models \
    && chown -R savgan:savgan /var/cache/savgan
WORKDIR /home/savgan
USER 10001:10001
HEALTHCHECK --interval=60s --timeout=30s --start-period=120s --retries=3 \
    CMD ["sh", "-c", "celery -A savgan.worker.app inspect ping --destination \"celery@$HOSTNAME\" --timeout 15 > /dev/null || exit 1"]
CMD ["savgan", "worker", "--queues", "generate,train", "--concurrency", "1"]

# ---- gpu: CUDA PyTorch base, torch untouched --------------------------------------------------
FROM ${PYTORCH_IMAGE} AS gpu
LABEL org.opencontainers.image.title="savgan-worker" \
      org.opencontainers.image.description="SAVGAN video synthesis service: Celery worker (CUDA)" \
      org.opencontainers.image.licenses="MIT"
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    SAVGAN_MODE=distributed \
    SAVGAN_DEVICE=auto \
    SAVGAN_WORKER_MODEL_CACHE_DIR=/var/cache/savgan/models
COPY docker/requirements-api.txt docker/requirements-worker.txt /tmp/requirements/
COPY --from=wheel /wheels /tmp/wheels
# The project needs Python 3.11 (pyproject requires-python); fail early and clearly if a newer
# base image changed it. Everything is installed with --no-deps from the pinned lists, so pip
# never resolves torch again; the torch version is compared before and after to prove it.
RUN python -c "import sys; assert sys.version_info[:2] == (3, 11), f'savgan needs Python 3.11, {sys.version} in PYTORCH_IMAGE'" \
    && python -c "import torch; print(torch.__version__)" > /tmp/torch-before \
    && pip install --no-cache-dir --no-deps \
       -r /tmp/requirements/requirements-api.txt -r /tmp/requirements/requirements-worker.txt \
    && pip install --no-cache-dir --no-deps /tmp/wheels/savgan-*.whl \
    && python -c "import torch; print(torch.__version__)" > /tmp/torch-after \
    && cmp /tmp/torch-before /tmp/torch-after \
    && python -c "import savgan.worker.tasks, savgan.model.generate, savgan.model.train" \
    && rm -rf /tmp/requirements /tmp/wheels /tmp/torch-before /tmp/torch-after
RUN groupadd --system --gid 10001 savgan \
    && useradd --system --uid 10001 --gid savgan --home-dir /home/savgan --create-home \
       --shell /usr/sbin/nologin savgan \
    && mkdir -p /var/cache/savgan/models \
    && chown -R savgan:savgan /var/cache/savgan
WORKDIR /home/savgan
USER 10001:10001
# Alive = this node answers a broadcast ping through the broker (the main process answers even
# while its child trains). The Celery node name is celery@<container hostname>.
HEALTHCHECK --interval=60s --timeout=30s --start-period=180s --retries=3 \
    CMD ["sh", "-c", "celery -A savgan.worker.app inspect ping --destination \"celery@$HOSTNAME\" --timeout 15 > /dev/null || exit 1"]
CMD ["savgan", "worker", "--queues", "generate,train", "--concurrency", "1"]
