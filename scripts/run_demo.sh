#!/usr/bin/env bash
# The main job, from nothing: a virtual environment, the plugin, the host (solo-learn, cloned at
# the known-good commit unless SOLO_LEARN_PATH points at a checkout), the demo data, then FroSSL
# pretraining through the host's unmodified main_pretrain.py and its offline linear probe.
#
#   bash scripts/run_demo.sh                 # everything under ./demo
#   SOLO_LEARN_PATH=~/solo-learn bash scripts/run_demo.sh
#
# Extra arguments go to main_pretrain.py as Hydra overrides (e.g. max_epochs=5).
set -euo pipefail

PLUGIN_DIR=$(cd "$(dirname "$0")/.." && pwd)
DEMO_DIR=${DEMO_DIR:-$PWD/demo}
VENV=${VENV:-$DEMO_DIR/venv}
SOLO_LEARN_REPO=https://github.com/vturrisi/solo-learn
SOLO_LEARN_COMMIT=9187ea3

mkdir -p "$DEMO_DIR"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"
python -m pip install -q "$PLUGIN_DIR[host,demo]"

if [ -z "${SOLO_LEARN_PATH:-}" ]; then
    SOLO_LEARN_PATH=$DEMO_DIR/solo-learn
    if [ ! -d "$SOLO_LEARN_PATH/.git" ]; then
        git clone -q "$SOLO_LEARN_REPO" "$SOLO_LEARN_PATH"
        git -C "$SOLO_LEARN_PATH" checkout -q "$SOLO_LEARN_COMMIT"
    fi
fi
export PYTHONPATH="$SOLO_LEARN_PATH${PYTHONPATH:+:$PYTHONPATH}"

cd "$DEMO_DIR"
frossl-plugin demo-data datasets/frossl_demo
python "$SOLO_LEARN_PATH/main_pretrain.py" --config-name frossl_demo.yaml "$@"
python "$SOLO_LEARN_PATH/main_linear.py" --config-name frossl_demo_linear.yaml
echo "Metrics: $DEMO_DIR/lightning_logs/version_*/metrics.csv; checkpoints: $DEMO_DIR/trained_models/demo"
