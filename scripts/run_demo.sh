#!/usr/bin/env bash
# The main job, from nothing: a virtual environment, the plugin from this checkout, the host
# (solo-learn at the known-good commit), the demo data, then FroSSL pretraining through the host's
# unmodified main_pretrain.py and its offline linear probe; ends by printing the results.
#
#   bash scripts/run_demo.sh                          # everything under ./demo
#   SOLO_LEARN_PATH=~/solo-learn bash scripts/run_demo.sh       # use an existing checkout
#   SOLO_LEARN_REPO=<git URL, path or bundle> bash scripts/run_demo.sh   # clone from a mirror
#   SEED=1 bash scripts/run_demo.sh                   # another seed (default 5)
#
# Extra arguments go to main_pretrain.py as Hydra overrides (e.g. max_epochs=5).
set -euo pipefail

PLUGIN_DIR=$(cd "$(dirname "$0")/.." && pwd)
DEMO_DIR=${DEMO_DIR:-$PWD/demo}
VENV=${VENV:-$DEMO_DIR/venv}
SEED=${SEED:-5}

mkdir -p "$DEMO_DIR"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"
python -m pip install -q "$PLUGIN_DIR[host,demo]"

if [ -z "${SOLO_LEARN_PATH:-}" ]; then
    SOLO_LEARN_PATH=$DEMO_DIR/solo-learn
    bash "$PLUGIN_DIR/scripts/get_host.sh" "$SOLO_LEARN_PATH"
fi
export PYTHONPATH="$SOLO_LEARN_PATH${PYTHONPATH:+:$PYTHONPATH}"

cd "$DEMO_DIR"
frossl-plugin demo-data datasets/frossl_demo
mkdir -p markers results
RESULTS=results/seed$SEED.txt
touch markers/pretrain
python "$SOLO_LEARN_PATH/main_pretrain.py" --config-name frossl_demo.yaml seed="$SEED" "$@"
frossl-plugin results --since markers/pretrain --checkpoints trained_models/demo/frossl \
    --label "pretraining" --accuracy-name "online linear" > "$RESULTS"
touch markers/linear
python "$SOLO_LEARN_PATH/main_linear.py" --config-name frossl_demo_linear.yaml seed="$SEED"
frossl-plugin results --since markers/linear --checkpoints trained_models/demo/linear \
    --label "offline linear probe" --accuracy-name "linear probe" >> "$RESULTS"

echo
echo "Results (seed $SEED), also in $DEMO_DIR/$RESULTS:"
cat "$RESULTS"
