"""FroSSL's ``gather_across_devices`` with two CPU processes (gloo): the loss alone, and a real
2-process Lightning ``ddp`` run.

The loss test spawns two processes that each hold half of the batch and compares the loss and
the DDP-averaged gradients with the single-process loss on the whole batch.
tests/ddp_frossl_run.py trains under ``strategy="ddp"`` with 2 CPU processes and, for reference,
in a single process on the same global batch; the loss, the all-reduced gradients and the updated
weights must agree. Without gathering, each rank's loss is the loss of its local half, which
differs: the comparison can fail.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from helpers import host_env, requires_host

from frossl_plugin.losses import frossl_loss_func

SCRIPT = Path(__file__).resolve().parent / "ddp_frossl_run.py"
GLOBAL_BATCH = 16


def run_ddp_script(
    out: Path, mode: str, devices: int, gather: bool, env=None, center: bool = False
) -> list:
    """Runs the script and returns the per-rank results, ordered by rank."""

    completed = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            f"--mode={mode}",
            f"--devices={devices}",
            f"--gather={int(gather)}",
            f"--center={int(center)}",
            f"--global-batch={GLOBAL_BATCH}",
            f"--out={out}",
        ],
        cwd=out.parent,
        env=env or host_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    results = [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(devices)]
    assert [r["world_size"] for r in results] == [devices] * devices
    return results


@pytest.fixture(scope="module")
def toy_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp_toy")
    return {
        "single": run_ddp_script(root / "single", "toy", 1, gather=True)[0],
        "ddp_gather": run_ddp_script(root / "ddp_gather", "toy", 2, gather=True),
        "ddp_local": run_ddp_script(root / "ddp_local", "toy", 2, gather=False),
    }


@pytest.fixture(scope="module")
def centred_toy_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp_toy_centred")
    return {
        "single": run_ddp_script(root / "single", "toy", 1, gather=True, center=True)[0],
        "ddp_gather": run_ddp_script(root / "ddp_gather", "toy", 2, gather=True, center=True),
    }


@pytest.mark.slow
def test_ddp_gathered_loss_equals_single_process_global_batch(toy_runs):
    single = toy_runs["single"]["losses"]
    assert single.shape == (2,)
    for step, indexes in enumerate(toy_runs["single"]["indexes"]):  # same global batches
        per_rank = [rank["indexes"][step] for rank in toy_runs["ddp_gather"]]
        assert all(len(part) == GLOBAL_BATCH // 2 for part in per_rank)
        assert torch.equal(torch.cat(per_rank).sort().values, indexes)
    for rank_result in toy_runs["ddp_gather"]:
        torch.testing.assert_close(rank_result["losses"], single, rtol=1e-5, atol=1e-6)


def assert_same_gradients_and_weights(rank_result, single):
    """A rank's first-step gradients (each nonzero) and final weights equal the single-process
    run's."""

    for name, grad in single["first_grads"].items():
        assert grad.abs().max() > 0, name
        torch.testing.assert_close(rank_result["first_grads"][name], grad, rtol=1e-4, atol=1e-6)
    for name, weight in single["weights"].items():
        torch.testing.assert_close(rank_result["weights"][name], weight, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_ddp_gathered_gradients_and_weights_equal_single_process(toy_runs):
    single = toy_runs["single"]
    for rank_result in toy_runs["ddp_gather"]:
        assert rank_result["first_grads"].keys() == single["first_grads"].keys()
        assert_same_gradients_and_weights(rank_result, single)


@pytest.mark.slow
def test_ddp_gathered_centred_loss_gradients_and_weights_equal_single_process(
    centred_toy_runs, toy_runs
):
    """With ``center=True`` each feature is centred over the global batch: the loss, the
    all-reduced gradients and the weights equal the single-process run on the global batch."""

    single = centred_toy_runs["single"]
    # the flag reached the loss: the centred first-step loss is not the uncentred one
    assert not torch.allclose(single["losses"][0], toy_runs["single"]["losses"][0], rtol=1e-3)
    for rank_result in centred_toy_runs["ddp_gather"]:
        torch.testing.assert_close(rank_result["losses"], single["losses"], rtol=1e-5, atol=1e-6)
        assert_same_gradients_and_weights(rank_result, single)


@pytest.mark.slow
def test_ddp_without_gathering_uses_the_local_batch(toy_runs):
    """Each rank's first loss is the loss of its own half of the global batch, not the global."""

    import lightning.pytorch as pl
    from ddp_frossl_run import IN_DIM, NUM_CLASSES, NUM_STEPS, ToyFroSSL
    from method_cfg import TwoViewDataset

    from frossl_plugin.losses.frossl import frossl_loss_func

    single = toy_runs["single"]
    ranks = toy_runs["ddp_local"]
    dataset = TwoViewDataset(NUM_STEPS * GLOBAL_BATCH, (IN_DIM,), NUM_CLASSES)
    pl.seed_everything(0, workers=True)  # the script's initialization
    model = ToyFroSSL(gather=False)
    for rank, result in enumerate(ranks):
        indexes = torch.arange(rank, GLOBAL_BATCH, 2)  # DistributedSampler, no shuffling
        views = dataset.views[:, indexes]
        with torch.no_grad():
            z = torch.stack([model.encoder(views[0]), model.encoder(views[1])])
            local_loss, _, _ = frossl_loss_func(z)
        torch.testing.assert_close(result["losses"][0], local_loss, rtol=1e-5, atol=1e-6)
        assert not torch.allclose(result["losses"][0], single["losses"][0], rtol=1e-3)


@requires_host
@pytest.mark.slow
def test_ddp_frossl_method_gathers_the_global_batch(tmp_path):
    """The FroSSL method under 2-process ddp with ``gather_across_devices``: both ranks' loss is
    the loss of the two ranks' embeddings concatenated, not that of their own half."""

    from frossl_plugin.losses.frossl import frossl_loss_func

    ranks = run_ddp_script(tmp_path / "method", "method", 2, gather=True)
    for step in range(2):
        per_rank = [r["records"][step] for r in ranks]
        global_z = [
            torch.cat([rank["z"][view] for rank in per_rank]) for view in range(2)
        ]  # 2 views of (GLOBAL_BATCH, D)
        assert global_z[0].shape[0] == GLOBAL_BATCH
        global_loss, _, _ = frossl_loss_func(global_z)
        for record in per_rank:
            local_loss, _, _ = frossl_loss_func(record["z"])
            torch.testing.assert_close(record["loss"], global_loss, rtol=1e-5, atol=1e-5)
            assert not torch.allclose(record["loss"], local_loss, rtol=1e-3)


@requires_host
@pytest.mark.slow
def test_unmodified_main_pretrain_runs_frossl_under_the_hosts_ddp_strategy(tmp_path, demo_data):
    """The host's own ``strategy: ddp`` (its DDPStrategy) with 2 CPU processes and gathering.

    On CPU, ``devices`` must be a string and SyncBatchNorm is unavailable, so this run sets
    ``sync_batchnorm=false``; GPU runs keep the configs' ``sync_batchnorm: true``.
    """

    from helpers import quick_demo_overrides, run_host_script

    result = run_host_script(
        "main_pretrain.py",
        [
            *quick_demo_overrides(demo_data, tmp_path / "models"),
            "devices='2'",
            "strategy=ddp",
            "sync_batchnorm=false",
            "method_kwargs.gather_across_devices=true",
            "hydra/job_logging=default",  # shows Lightning's per-rank start-up lines
        ],
        cwd=tmp_path,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in output, output[-3000:]
    (ckpt,) = (tmp_path / "models" / "frossl").rglob("*.ckpt")
    assert torch.load(ckpt, weights_only=False)["global_step"] == 2


# ---------------------------------------------------------------- two-process gloo group
WORLD_SIZE = 2


def _ddp_worker(rank, init_file, shape, results_dir, center):
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD_SIZE
    )
    try:
        num_views, n_global, d = shape
        torch.manual_seed(0)  # same data and weights on every rank
        # per-view offsets: centring over the local half instead of the global batch would show
        inputs = torch.randn(num_views, n_global, 6, dtype=torch.float64)
        inputs = inputs + torch.randn(num_views, 1, 6, dtype=torch.float64)
        layer = torch.nn.Linear(6, d).double()

        # single-process reference: the whole batch on one process
        reference_layer = torch.nn.Linear(6, d).double()
        reference_layer.load_state_dict(layer.state_dict())
        reference_out = reference_layer(inputs).detach().requires_grad_()
        reference_loss = frossl_loss_func(reference_out, invariance_weight=1.2, center=center)
        reference_loss[0].backward()
        torch.autograd.backward(reference_layer(inputs), reference_out.grad)

        # this rank's shard, with statistics gathered over both ranks
        local = slice(rank * n_global // WORLD_SIZE, (rank + 1) * n_global // WORLD_SIZE)
        local_out = layer(inputs[:, local])
        local_out.retain_grad()
        loss = frossl_loss_func(
            local_out, invariance_weight=1.2, gather_across_devices=True, center=center
        )
        local_loss = frossl_loss_func(local_out.detach(), invariance_weight=1.2, center=center)
        loss[0].backward()
        for param in layer.parameters():  # what DDP does: average gradients over ranks
            dist.all_reduce(param.grad)
            param.grad /= WORLD_SIZE

        torch.save(
            {
                "loss": [t.detach() for t in loss],
                "reference_loss": [t.detach() for t in reference_loss],
                "local_loss": local_loss[0],
                "uncentred_loss": frossl_loss_func(reference_out.detach(), 1.2)[0],
                "grads": [p.grad for p in layer.parameters()],
                "reference_grads": [p.grad for p in reference_layer.parameters()],
                "local_out_grad": local_out.grad,
                "reference_out_grad": reference_out.grad[:, local],
            },
            os.path.join(results_dir, f"rank{rank}.pt"),
        )
        dist.barrier()  # no rank tears gloo down while the other still talks to it
    finally:
        dist.destroy_process_group()
    # the results are saved: skip the interpreter's teardown, in which gloo's threads
    # occasionally abort the process ("terminate called without an active exception")
    os._exit(0)


@pytest.mark.parametrize("center", [False, True])
@pytest.mark.parametrize("shape", [(2, 16, 8), (4, 8, 12)])  # global N > D and N < D
def test_gather_across_two_gloo_processes_equals_global_batch(tmp_path, shape, center):
    mp.spawn(
        _ddp_worker,
        args=(str(tmp_path / "init"), shape, str(tmp_path), center),
        nprocs=WORLD_SIZE,
        join=True,
    )
    for rank in range(WORLD_SIZE):
        result = torch.load(tmp_path / f"rank{rank}.pt")
        for value, reference in zip(result["loss"], result["reference_loss"]):
            assert torch.allclose(value, reference, rtol=1e-10)
        # the comparison can fail: the local half's loss, or the other variant, differs
        assert not torch.allclose(result["local_loss"], result["reference_loss"][0], rtol=1e-3)
        if center:
            assert not torch.allclose(result["uncentred_loss"], result["loss"][0], rtol=1e-3)
        # after DDP's averaging, parameters get exactly the global-batch gradient
        for grad, reference in zip(result["grads"], result["reference_grads"]):
            assert torch.allclose(grad, reference, rtol=1e-8, atol=1e-12)
        # the autograd-aware gather sums gradients over ranks: W x the global-loss gradient
        assert torch.allclose(
            result["local_out_grad"], WORLD_SIZE * result["reference_out_grad"], rtol=1e-8
        )
