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
# The torch version is declared once, in constraints.txt (the lock the tests install from): the
# cpu target installs that pin, and the gpu target's base image must carry the same version (its
# build fails otherwise; tests/test_lock.py checks the tag below against the lock).
ARG PYTORCH_IMAGE=pytorch/pytorch:2.13.0-cuda12.8-cudnn9-runtime
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
# Build inputs are bind-mounted, never copied, so no layer keeps them. Everything --no-deps with
# versions from the lock: the pinned lists (torch's own dependencies included) from PyPI, then
# only the CPU torch wheel from PyTorch's CPU index, then the project. Size (docs/SERVICE.md,
# "Images"): --no-compile leaves out about 200 MB of .pyc files (PYTHONDONTWRITEBYTECODE is set,
# so each process compiles what it imports: the worker about 4 s more at start, its health check
# about 1 s), and torch's C++ headers and CMake files (about 60 MB), which only building C++
# extensions needs, are removed in the same layer.
RUN --mount=type=bind,source=constraints.txt,target=/tmp/build/constraints.txt \
    --mount=type=bind,source=docker,target=/tmp/build/docker \
    --mount=type=bind,from=wheel,source=/wheels,target=/tmp/build/wheels \
    pip install --no-cache-dir --no-compile --no-deps -c /tmp/build/constraints.txt \
       -r /tmp/build/docker/requirements-api.txt -r /tmp/build/docker/requirements-worker.txt \
       -r /tmp/build/docker/requirements-torch.txt \
    && pip install --no-cache-dir --no-compile --no-deps -c /tmp/build/constraints.txt \
       --index-url https://download.pytorch.org/whl/cpu torch \
    && pip install --no-cache-dir --no-compile --no-deps /tmp/build/wheels/savgan-*.whl \
    && python -c "import importlib.util as u, pathlib, shutil; torch = pathlib.Path(u.find_spec('torch').origin).parent; [shutil.rmtree(torch / d) for d in ('include', 'share/cmake')]" \
    && pip check \
    && python -c "import torch; assert not torch.cuda.is_available(); print('torch', torch.__version__)" \
    && python -c "import savgan.worker.tasks, savgan.model.generate, savgan.model.train"
RUN groupadd --system --gid 10001 savgan \
    && useradd --system --uid 10001 --gid savgan --home-dir /home/savgan --create-home \
       --shell /usr/sbin/nologin savgan \
    && mkdir -p /var/cache/savgan/models \
    && chown -R savgan:savgan /var/cache/savgan
WORKDIR /home/savgan
USER 10001:10001
HEALTHCHECK --interval=60s --timeout=30s --start-period=180s --retries=3 \
    CMD ["sh", "-c", "celery -A savgan.worker.app inspect ping --destination \"celery@$(hostname)\" --timeout 15 > /dev/null || exit 1"]
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
# The project needs Python 3.11 (pyproject requires-python); fail early and clearly if a newer
# base image changed it, or if its torch is not the lock's. Everything is installed with
# --no-deps from the pinned lists, so pip never resolves torch again; the torch version is
# compared before and after to prove it.
RUN --mount=type=bind,source=constraints.txt,target=/tmp/build/constraints.txt \
    --mount=type=bind,source=docker,target=/tmp/build/docker \
    --mount=type=bind,from=wheel,source=/wheels,target=/tmp/build/wheels \
    python -c "import sys; assert sys.version_info[:3] >= (3, 11, 3) and sys.version_info[:2] == (3, 11), f'savgan needs Python 3.11.3+, {sys.version} in PYTORCH_IMAGE'" \
    && python -c "import re, torch; pin = re.search(r'^torch==(\S+)', open('/tmp/build/constraints.txt').read(), re.M)[1]; assert torch.__version__.split('+')[0] == pin, f'PYTORCH_IMAGE has torch {torch.__version__}, constraints.txt pins {pin}'" \
    && python -c "import torch; print(torch.__version__)" > /tmp/torch-before \
    && pip install --no-cache-dir --no-compile --no-deps -c /tmp/build/constraints.txt \
       -r /tmp/build/docker/requirements-api.txt -r /tmp/build/docker/requirements-worker.txt \
    && pip install --no-cache-dir --no-compile --no-deps /tmp/build/wheels/savgan-*.whl \
    && python -c "import torch; print(torch.__version__)" > /tmp/torch-after \
    && cmp /tmp/torch-before /tmp/torch-after \
    && python -c "import savgan.worker.tasks, savgan.model.generate, savgan.model.train" \
    && rm -f /tmp/torch-before /tmp/torch-after
RUN groupadd --system --gid 10001 savgan \
    && useradd --system --uid 10001 --gid savgan --home-dir /home/savgan --create-home \
       --shell /usr/sbin/nologin savgan \
    && mkdir -p /var/cache/savgan/models \
    && chown -R savgan:savgan /var/cache/savgan
WORKDIR /home/savgan
USER 10001:10001
# Alive = this node answers a broadcast ping through the broker (the main process answers even
# while its child trains). The Celery node name is celery@<container hostname>; $(hostname)
# rather than $HOSTNAME, which only some runtimes export into exec'd processes (podman does not).
HEALTHCHECK --interval=60s --timeout=30s --start-period=180s --retries=3 \
    CMD ["sh", "-c", "celery -A savgan.worker.app inspect ping --destination \"celery@$(hostname)\" --timeout 15 > /dev/null || exit 1"]
CMD ["savgan", "worker", "--queues", "generate,train", "--concurrency", "1"]
