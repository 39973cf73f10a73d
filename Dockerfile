# Mirada: CLI, worker and dashboard in one image.
#   docker build -t mirada .                       # CPU-only torch (smaller image)
#   docker build -t mirada:gpu --build-arg TORCH_INDEX_URL= .   # PyPI torch with CUDA
# docker-compose.yml builds both (the GPU one only for `--profile gpu`).
FROM python:3.11-slim

# Java runs the PTB tokenizer and METEOR 1.5 used by the caption metrics (pycocoevalcap).
# The man1 folder works around the JRE's postinst failing on slim images without it.
RUN mkdir -p /usr/share/man/man1 \
    && apt-get update \
    && apt-get install -y --no-install-recommends default-jre-headless \
    && rm -rf /var/lib/apt/lists/*

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# Torch wheels: by default the CPU-only builds from PyTorch's index (about 1.5 GB smaller than
# PyPI's CUDA builds; the dashboard and CPU workers never need CUDA). Build with
# --build-arg TORCH_INDEX_URL= (empty) for PyPI's CUDA-enabled torch, as worker-gpu does.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

WORKDIR /app

# Dependencies first, from pyproject alone, so editing the code does not reinstall torch.
COPY pyproject.toml README.md ./
RUN mkdir -p shared/mirada worker/mirada/worker dashboard/mirada/dashboard \
    && touch shared/mirada/version.py worker/mirada/worker/__init__.py \
       dashboard/mirada/dashboard/__init__.py \
    && pip install ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"} ".[postgres]" \
    && pip uninstall -y mirada \
    && rm -rf shared worker dashboard build *.egg-info

COPY shared ./shared
COPY worker ./worker
COPY dashboard ./dashboard
RUN pip install --no-deps . \
    && rm -rf build *.egg-info \
    && mirada --version

# Run as an unprivileged user. /data (MIRADA_HOME: SQLite fallback, images, thumbnails) and
# /hf-cache (downloaded model weights) are volumes; named volumes copy this ownership.
RUN useradd --create-home --uid 1000 --shell /usr/sbin/nologin mirada \
    && mkdir -p /data /hf-cache \
    && chown mirada:mirada /data /hf-cache
ENV MIRADA_HOME=/data \
    HF_HOME=/hf-cache
USER mirada
WORKDIR /data

EXPOSE 8501
# Inside a container the dashboard must listen on all interfaces; publish the port on
# 127.0.0.1 (as docker-compose.yml does) unless you mean to expose it: it has no login.
CMD ["mirada", "dashboard", "--host", "0.0.0.0", "--port", "8501"]
