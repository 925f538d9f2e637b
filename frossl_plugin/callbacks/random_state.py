"""Random-number state in checkpoints, so that a resumed run draws what the uninterrupted run
would have drawn.

Lightning restores the weights, optimizer, schedulers and loop counters from a checkpoint, but not
the random generators, which decide the data order and the augmentations of every later epoch.
This callback stores the states of Python's ``random``, NumPy's global generator, torch's CPU
generator and every CUDA device's generator in each checkpoint (``state_dict``), and puts them
back when Lightning loads a checkpoint to resume. The host saves its checkpoints at the end of a
training epoch; the uninterrupted run next draws from these generators when it builds the next
epoch's data iterator, and a resumed run builds that iterator right after loading, so both draw
from the same states. tests/test_resume.py checks that a resumed run ends with the weights and
optimizer state of an uninterrupted one.
"""

import random
from typing import Any, Dict

import numpy as np
import torch
from lightning.pytorch import Callback


def capture_random_state() -> Dict[str, Any]:
    """The states of ``random``, NumPy's global generator, torch's CPU generator and (where
    initialized) every CUDA device's generator."""

    name, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    state = {
        "python": random.getstate(),
        # as plain values and a tensor: Lightning loads checkpoints with weights_only=True
        "numpy": {
            "name": str(name),
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_random_state(state: Dict[str, Any]) -> None:
    """Puts back a state from :func:`capture_random_state`.

    Raises:
        ValueError: if the state lacks a generator or holds CUDA states for a different number of
            devices than this process sees.
    """

    missing = sorted({"python", "numpy", "torch"} - set(state))
    if missing:
        raise ValueError(f"The checkpoint's random state lacks {missing}; expected all three.")
    python_state = state["python"]
    random.setstate((python_state[0], tuple(python_state[1]), python_state[2]))
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            numpy_state["name"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["position"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        if len(state["cuda"]) != torch.cuda.device_count():
            raise ValueError(
                f"The checkpoint holds random states of {len(state['cuda'])} CUDA devices, but "
                f"this process sees {torch.cuda.device_count()}; resume on the same devices."
            )
        torch.cuda.set_rng_state_all(state["cuda"])


class RandomStateCheckpoint(Callback):
    """Saves the random generators' states in every checkpoint and restores them as soon as
    Lightning loads one, before it builds the resumed epoch's data iterator (the point at which
    the uninterrupted run draws the next epoch's data order and worker seeds)."""

    def state_dict(self) -> Dict[str, Any]:
        return {"random_state": capture_random_state()}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        restore_random_state(state_dict["random_state"])
