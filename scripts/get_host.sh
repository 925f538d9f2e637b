#!/usr/bin/env bash
# Clones the host, solo-learn, at the known-good commit into DEST (an existing clone is reused).
#
#   bash scripts/get_host.sh DEST
#   SOLO_LEARN_REPO=<git URL, path or bundle> bash scripts/get_host.sh DEST   # a mirror or bundle
set -euo pipefail

DEST=${1:?usage: get_host.sh DEST}
SOLO_LEARN_REPO=${SOLO_LEARN_REPO:-https://github.com/vturrisi/solo-learn}
SOLO_LEARN_COMMIT=${SOLO_LEARN_COMMIT:-9187ea3}

if [ ! -d "$DEST/.git" ]; then
    git clone -q "$SOLO_LEARN_REPO" "$DEST"
fi
git -C "$DEST" checkout -q "$SOLO_LEARN_COMMIT"
echo "solo-learn $(git -C "$DEST" rev-parse --short HEAD) in $DEST (from $SOLO_LEARN_REPO)"
