#!/usr/bin/env bash
# Installs everything pxtui needs on a fresh Debian machine: idempotent, safe to run on every start.
# Debian packages (BCC, kernel headers with Pixie-style fallback, load tools) and the project venv.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
log() { printf '[bootstrap] %s\n' "$*" >&2; }

if [[ $EUID -ne 0 ]]; then
  log "must run as root: eBPF needs it (try: sudo $0)"; exit 2
fi

APT_PKGS=(python3-bpfcc libbpfcc tmux curl nginx-light wrk
          dnsmasq-base dnsutils  # a DNS server (no system service) and dig for the DNS tests
          nftables  # packet drops in a network namespace for the tcp_stats tests
          openssl  # the TLS tests make their self-signed certificate with `openssl req`
          gcc)  # builds the profiler tests' busy C fixture (tests/fixtures/profiler/busy.c)
missing=()
for p in "${APT_PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done

KV="$(uname -r)"
need_headers=1
[[ -e "/lib/modules/$KV/build/Makefile" ]] && need_headers=0

if (( ${#missing[@]} )) || (( need_headers )); then
  log "apt-get update"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
fi
if (( ${#missing[@]} )); then
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # nginx's package starts a daemon on :80; the benchmark runs its own instance.
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active -q nginx 2>/dev/null; then systemctl stop nginx || true; fi
  pkill -f 'nginx: master' 2>/dev/null || true
fi

if (( need_headers )); then
  # Exact headers first; else the nearest packaged ones (what Pixie does when the host has none).
  if apt-cache show "linux-headers-$KV" >/dev/null 2>&1; then
    log "installing exact kernel headers linux-headers-$KV"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "linux-headers-$KV" >/dev/null
  else
    log "no packaged headers for $KV: falling back to the nearest packaged headers (linux-headers-amd64)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends linux-headers-amd64 >/dev/null
    H="$(ls -d /usr/src/linux-headers-*-amd64 | sort -V | tail -1)"
    mkdir -p "/lib/modules/$KV"
    ln -sfn "$H" "/lib/modules/$KV/build"
    ln -sfn "${H%-amd64}-common" "/lib/modules/$KV/source"
  fi
fi

if [[ ! -x .venv/bin/python ]]; then
  log "creating .venv"
  python3 -m venv .venv
fi
stamp=.venv/.pxtui-installed
if [[ ! -f $stamp || pyproject.toml -nt $stamp ]]; then
  log "installing Python dependencies"
  .venv/bin/pip install -q --disable-pip-version-check -e '.[dev]'
  touch "$stamp"
fi
# Byte-compile the project up front: some environments set PYTHONDONTWRITEBYTECODE, and then every
# start of pxtui would compile every module from source again (about 0.4 s of the TUI's first frame).
.venv/bin/python -m compileall -q -j 0 pxtui cluster >/dev/null
log "ready"
