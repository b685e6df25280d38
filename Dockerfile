# The pxtui image: the Vizier (`pxtui vizier`) and the PEM (`pxtui agent`) of k8s/base.
#
#   docker build -t pxtui:0.1.0 .
#
# Debian bookworm, because BCC comes from Debian's python3-bpfcc (never `pip install bcc`, an
# unrelated PyPI package; see shared ebpf-notes §1). Kernel headers are NOT in the image: the PEM
# mounts the node's /lib/modules and /usr/src read-only, since the headers must match the node's
# kernel, not the image's.
FROM debian:bookworm-slim

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# python3-bpfcc pulls libbpfcc (with its LLVM/clang libraries) in; mount is for tracefs when a node
# has none mounted (cluster/pem/sources/bcc_loader.py).
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      python3 python3-venv python3-bpfcc libbpfcc ca-certificates mount \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/pxtui
# Dependencies first, so a source change does not reinstall them.
COPY pyproject.toml README.md ./
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --upgrade pip setuptools \
 && /opt/venv/bin/python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
 && /opt/venv/bin/pip install -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

# The sources: an editable install keeps bpf/ and pxl_scripts/ where the code looks for them,
# next to the packages.
COPY cluster ./cluster
COPY pxtui ./pxtui
COPY bpf ./bpf
COPY pxl_scripts ./pxl_scripts
COPY k8s ./k8s
RUN /opt/venv/bin/pip install --no-deps -e . \
 && /opt/venv/bin/pxtui --version

ENV PATH=/opt/venv/bin:$PATH
# The manifests give the command (`pxtui vizier ...` or `pxtui agent ...`); this is only a default.
CMD ["pxtui", "--help"]
