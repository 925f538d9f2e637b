"""Comparison sweeps: presets from the host's recipes, the resumable sweeper under Hydra's
launchers, interruption, and the ``compare`` front door. The report itself is tested in
test_report.py, the image-folder splits in test_compare_image_folder.py."""

import itertools
import json
import os
import pickle
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import HOST_PATH, host_env, requires_host, run_host_script, two_step_cpu_overrides
from omegaconf import OmegaConf

from frossl_plugin.compare import sweep

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
BASELINES = ["barlow_twins", "vicreg", "simclr", "byol", "mocov2plus", "simsiam"]
SHARED_KEYS_DIFFER = {"method", "method_kwargs", "momentum", "name"}


def compose_compare(overrides, host=None):
    """compare.yaml composed in a fresh process (each Hydra start finds the host anew)."""

    env = host_env()
    if host is not None:
        env["SOLO_LEARN_PATH"] = str(host)
    code = (
        "import json, sys\n"
        "from hydra import compose, initialize_config_module\n"
        "from omegaconf import OmegaConf\n"
        "with initialize_config_module('frossl_plugin.configs', version_base='1.2'):\n"
        "    cfg = compose('compare', overrides=sys.argv[1:])\n"
        "print(json.dumps(OmegaConf.to_container(cfg, resolve=True)))\n"
    )
    base = ["data.train_path=/x/train", "data.val_path=/x/val"]
    done = subprocess.run(
        [sys.executable, "-c", code, *base, *overrides], env=env, capture_output=True, text=True
    )
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.splitlines()[-1])


def host_recipe(method):
    for path in sorted((HOST_PATH / "scripts" / "pretrain" / "cifar").glob("*.yaml")):
        recipe = OmegaConf.to_container(OmegaConf.load(path))
        if recipe.get("method") == method:
            return recipe
    raise AssertionError(f"the host has no CIFAR recipe for {method}")


@requires_host
@pytest.mark.host
@pytest.mark.parametrize("method", BASELINES)
def test_a_baseline_preset_takes_only_its_method_settings_from_the_hosts_recipe(method):
    """One shared recipe (optimizer, lr, weight decay, augmentations, schedule) for every method;
    a preset takes only method, method_kwargs and momentum from the host's recipe."""

    cfg = compose_compare([f"preset={method}"])
    frossl = compose_compare(["preset=frossl"])
    recipe = host_recipe(method)

    assert cfg["method"] == method
    assert cfg["method_kwargs"] == recipe["method_kwargs"]  # nothing of FroSSL's left over
    assert cfg.get("momentum") == recipe.get("momentum")
    shared = {k: v for k, v in cfg.items() if k not in SHARED_KEYS_DIFFER}
    assert shared == {k: v for k, v in frossl.items() if k not in SHARED_KEYS_DIFFER}
    assert (
        cfg["optimizer"] == frossl["optimizer"] and cfg["augmentations"] == frossl["augmentations"]
    )


@requires_host
@pytest.mark.host
def test_the_frossl_preset_is_the_plugins_own():
    cfg = compose_compare([])
    plugin = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "preset" / "frossl.yaml"))
    assert cfg["method"] == "frossl"
    assert cfg["method_kwargs"] == plugin["method_kwargs"]
    assert cfg["method_kwargs"]["proj_output_dim"] == "auto"  # follows each job's batch
    assert cfg["name"] == "compare-frossl" and cfg["label"] is None


@requires_host
@pytest.mark.host
@pytest.mark.parametrize("method", BASELINES)
def test_documented_fallbacks_equal_the_known_good_hosts_recipes(method):
    fallback = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "preset" / f"{method}.yaml"))
    recipe = host_recipe(method)
    assert fallback == {
        key: recipe[key] for key in ("method", "method_kwargs", "momentum") if key in recipe
    }


@pytest.mark.parametrize("method", BASELINES)
def test_a_checkout_without_scripts_gets_the_documented_fallback(tmp_path, method):
    checkout = tmp_path / "solo-learn"
    (checkout / "solo").mkdir(parents=True)
    (checkout / "main_pretrain.py").write_text("")
    cfg = compose_compare([f"preset={method}"], host=checkout)
    fallback = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "preset" / f"{method}.yaml"))
    assert {key: cfg.get(key) for key in fallback} == fallback


def test_an_unknown_preset_names_the_choices():
    with pytest.raises(RuntimeError) as err:
        compose_compare(["preset=no_such_method"])
    assert "no_such_method" in str(err.value) and "frossl" in str(err.value)


# --- the sweeper's bookkeeping ---------------------------------------------------------------


def test_config_hash_follows_the_task_config_only():
    cfg = OmegaConf.create({"method": "frossl", "seed": 1, "a": {"b": 2}, "hydra": {"x": 1}})
    other_launcher = OmegaConf.create({**OmegaConf.to_container(cfg), "hydra": {"x": 2}})
    changed = OmegaConf.create({**OmegaConf.to_container(cfg), "a": {"b": 3}})

    assert sweep.config_hash(cfg) == sweep.config_hash(other_launcher)
    assert sweep.config_hash(cfg) != sweep.config_hash(changed)
    assert sweep.job_name(cfg, sweep.config_hash(cfg)).startswith("frossl_seed1_")


def planned_config(tmp_path, overrides):
    """compare.yaml composed with ``overrides`` on an image folder of two classes, as the
    sweeper hands a job's config to :class:`sweep.PlannedJob`."""

    for split in ("train", "val"):
        for name in ("a", "b"):
            (tmp_path / "data" / split / name).mkdir(parents=True, exist_ok=True)
    cfg = compose_compare(overrides)
    cfg["data"].update(train_path=str(tmp_path / "data/train"), val_path=str(tmp_path / "data/val"))
    return OmegaConf.create(cfg)


def resolved_width(config) -> int:
    resolution = sweep.resolve_task(config)
    assert resolution.resolved is not None, resolution.note
    return resolution.resolved["method_kwargs"]["proj_output_dim"]


@requires_host
@pytest.mark.host
def test_the_job_hash_follows_what_auto_resolves_to(tmp_path, monkeypatch):
    """Two configs that differ only in the width FroSSL's ``proj_output_dim: auto`` becomes (a
    change of its rule) are two jobs; an unchanged rule keeps the hash, an explicit width does
    not depend on the rule."""

    from frossl_plugin.methods import frossl

    config = planned_config(tmp_path, ["optimizer.batch_size=64"])
    explicit = planned_config(
        tmp_path, ["optimizer.batch_size=64", "method_kwargs.proj_output_dim=96"]
    )
    assert config.method_kwargs.proj_output_dim == "auto"
    width, digest, explicit_digest = (
        resolved_width(config),
        sweep.config_hash(config),
        sweep.config_hash(explicit),
    )
    assert isinstance(width, int) and width > 1
    assert sweep.config_hash(config) == digest  # deterministic
    assert digest != sweep.composed_hash(config)  # the resolved config's, not the composed one's

    monkeypatch.setattr(frossl, "auto_proj_output_dim", lambda *args, **kwargs: width // 2)
    assert resolved_width(config) == width // 2
    assert sweep.config_hash(config) != digest
    assert sweep.config_hash(explicit) == explicit_digest


@requires_host
@pytest.mark.host
def test_a_rerun_after_a_change_of_what_auto_resolves_to_runs_the_job_again(tmp_path, monkeypatch):
    from frossl_plugin.methods import frossl

    config = planned_config(tmp_path, ["optimizer.batch_size=64"])
    sweep_dir = tmp_path / "sweep"
    before = sweep.PlannedJob(["seed=5"], config, sweep_dir)
    assert before.identity == "resolved", before.resolution.note
    width = before.planned_with["method_kwargs.proj_output_dim"]
    # the preset's placeholders, resolved
    placeholders = ["method_kwargs.invariance_weight", "method_kwargs.proj_output_dim"]
    assert before.resolved_keys == placeholders
    (sweep_dir / before.name).mkdir(parents=True)
    (sweep_dir / before.name / sweep.DONE_FILE).write_text(
        json.dumps({"config_hash": before.digest})
    )
    assert sweep.PlannedJob(["seed=5"], config, sweep_dir).finished  # the same rule: skipped

    monkeypatch.setattr(frossl, "auto_proj_output_dim", lambda *args, **kwargs: width // 2)
    after = sweep.PlannedJob(["seed=5"], config, sweep_dir)
    assert not after.finished and after.name != before.name
    assert after.planned_with["method_kwargs.proj_output_dim"] == width // 2
    sweep.record_plan(sweep_dir, [before, after])
    plan = json.loads((sweep_dir / sweep.PLAN_FILE).read_text())["jobs"]
    assert plan[after.name]["planned_with"] == after.planned_with
    assert plan[after.name]["identity"] == "resolved"


def test_a_config_the_host_cannot_resolve_is_named_by_its_composed_config(tmp_path):
    config = OmegaConf.create({"method": "frossl", "seed": 1, "data": {"train_path": "/nowhere"}})
    job = sweep.PlannedJob(["seed=1"], config, tmp_path)
    assert job.identity == "composed" and job.resolution.note
    assert job.digest == sweep.composed_hash(config) and job.planned_with is None


def job_config(job_dir, max_epochs=2, epoch_stats=False, checkpoint_dir="trained_models"):
    """The config of a sweep job in ``job_dir`` as the plugin's Hydra callback sees it."""

    return OmegaConf.create(
        {
            "method": "frossl",
            "seed": 1,
            "max_epochs": max_epochs,
            "checkpoint": {"enabled": True, "dir": checkpoint_dir, "frequency": 1},
            "epoch_stats": {"enabled": epoch_stats, "path": "epoch_stats.jsonl"},
            "hydra": {
                "runtime": {"output_dir": str(job_dir)},
                "overrides": {"task": ["seed=1"]},
                "job": {"chdir": True},
            },
        }
    )


def host_checkpoint(folder, epoch):
    """A complete checkpoint of 0-based ``epoch`` in ``folder``, named as the host does."""

    import torch

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"compare-frossl-{folder.name}-ep={epoch}.ckpt"
    torch.save({"epoch": epoch}, path)
    return path


def completed():
    from hydra.core.utils import JobReturn, JobStatus

    result = JobReturn()
    result.status = JobStatus.COMPLETED
    return result


def test_the_recorded_settings_tell_apart_runs_of_another_target_momentum():
    byol = {
        "method_kwargs": {"proj_output_dim": 256},
        "momentum": {"base_tau": 0.996, "final_tau": 1.0},
        "optimizer": {"lr": 0.25},
        "data": {"num_large_crops": 2, "num_small_crops": 0},
        "augmentations": [{"crop_size": 12}],
    }
    assert sweep.run_settings(byol) == {
        "method_kwargs.proj_output_dim": 256,
        "momentum.base_tau": 0.996,
        "momentum.final_tau": 1.0,
        "optimizer.lr": 0.25,
        "data.num_large_crops": 2,
        "data.num_small_crops": 0,
        "augmentations.crop_size": [12],
    }
    other = {**byol, "momentum": {"base_tau": 0.98, "final_tau": 1.0}}
    assert sweep.settings_disagreements(sweep.run_settings(byol), sweep.run_settings(other)) == {
        "momentum.base_tau": {"planned": 0.996, "ran": 0.98}
    }
    frossl = {key: value for key, value in byol.items() if key != "momentum"}
    assert not any(key.startswith("momentum.") for key in sweep.run_settings(frossl))


def test_a_finished_job_records_what_the_host_ran_with(tmp_path, monkeypatch):
    """done.json: the settings of the args.json the host wrote during this run (an older one is
    left alone), and where they differ from the plan, the difference."""

    args = {
        "method": "frossl",
        "method_kwargs": {"proj_output_dim": 64, "center": False},
        "optimizer": {"lr": 0.0375, "batch_size": 32},
        "data": {"num_large_crops": 2, "num_small_crops": 0},
        "augmentations": [{"crop_size": 16, "num_crops": 2}],
    }
    ran_with = sweep.run_settings(args)
    planned_with = {**ran_with, "method_kwargs.proj_output_dim": 128}
    job_dir = tmp_path / "sweep" / "frossl_seed1_abcdef12"
    job_dir.mkdir(parents=True)
    plan = {job_dir.name: {"config_hash": "abcdef123456", "planned_with": planned_with}}
    (job_dir.parent / sweep.PLAN_FILE).write_text(json.dumps({"jobs": plan}))
    stale = job_dir / "trained_models" / "frossl" / "offline-old" / sweep.HOST_ARGS_FILE
    config = job_config(job_dir)
    monkeypatch.chdir(job_dir)
    monkeypatch.delenv(sweep.OWNER_ENV, raising=False)
    sweep.start_job(config)
    assert json.loads((job_dir / sweep.JOB_FILE).read_text())["config_hash"] == "abcdef123456"
    stale.parent.mkdir(parents=True)
    stale.write_text(json.dumps({**args, "method_kwargs": {"proj_output_dim": 1}}))
    os.utime(stale, (time.time() - 3600, time.time() - 3600))  # an earlier attempt's
    written = job_dir / "trained_models" / "frossl" / "offline-new" / sweep.HOST_ARGS_FILE
    written.parent.mkdir(parents=True)
    written.write_text(json.dumps(args))
    host_checkpoint(written.parent, epoch=1)  # the last epoch's, as the host names it

    sweep.finish_job(config, completed())
    done = json.loads((job_dir / sweep.DONE_FILE).read_text())
    assert done["config_hash"] == "abcdef123456"
    assert done["ran_with"] == ran_with and done["planned_with"] == planned_with
    assert done["ran_with_source"] == "trained_models/frossl/offline-new/args.json"
    assert done["disagreements"] == {"method_kwargs.proj_output_dim": {"planned": 128, "ran": 64}}

    written.unlink()  # checkpoint.enabled=false: the host writes no args.json
    sweep.finish_job(config, completed())
    done = json.loads((job_dir / sweep.DONE_FILE).read_text())
    assert done["ran_with"] is None and sweep.HOST_ARGS_FILE in done["ran_with_note"]
    assert done["disagreements"] == {}


def stats_line(epoch, part=0, resumed_from=0):
    record = {"epoch": epoch, "part": part, "resumed_from_epoch": resumed_from}
    return json.dumps({**record, "wall_time_s": 1.0, "epoch_time_s": 1.0}) + "\n"


def test_a_job_that_returned_before_its_last_epoch_is_not_finished(tmp_path, monkeypatch, capfd):
    """Hydra's COMPLETED says only that the host's script returned: a fit can end early
    without an error (Lightning's max_time, or a SIGTERM where fit returns after one). The
    epoch records and the last epoch's checkpoint decide."""

    job_dir = tmp_path / "sweep" / "frossl_seed1_abcdef12"
    job_dir.mkdir(parents=True)
    monkeypatch.chdir(job_dir)
    monkeypatch.delenv(sweep.OWNER_ENV, raising=False)
    config = job_config(job_dir, max_epochs=3, epoch_stats=True)
    sweep.start_job(config)
    stats, versions = job_dir / "epoch_stats.jsonl", job_dir / "trained_models" / "frossl"
    stats.write_text(stats_line(1) + stats_line(2))
    host_checkpoint(versions / "0", epoch=1)

    sweep.finish_job(config, completed())
    assert not (job_dir / sweep.DONE_FILE).exists()
    message = capfd.readouterr().err
    assert "returned before the end of its training" in message
    assert "epoch records (epoch_stats.jsonl) end at epoch 2 of 3" in message

    # the last epoch recorded, but its checkpoint cut off while it was written
    stats.write_text(stats_line(1) + stats_line(2) + stats_line(3, part=1, resumed_from=2))
    last = host_checkpoint(versions / "1", epoch=2)
    last.write_bytes(last.read_bytes()[:20])
    sweep.finish_job(config, completed())
    assert not (job_dir / sweep.DONE_FILE).exists()
    assert f"no complete checkpoint of epoch 3 in {versions}" in capfd.readouterr().err

    host_checkpoint(versions / "1", epoch=2)
    sweep.finish_job(config, completed())
    digest = json.loads((job_dir / sweep.JOB_FILE).read_text())["config_hash"]
    assert sweep.is_finished(job_dir, digest)

    # with neither records nor checkpoints to look at, nothing shows the end was reached
    (job_dir / sweep.DONE_FILE).unlink()
    blind = job_config(job_dir, max_epochs=3)
    blind.checkpoint.enabled = False
    sweep.finish_job(blind, completed())
    assert not (job_dir / sweep.DONE_FILE).exists()
    assert "neither epoch_stats nor checkpoints" in capfd.readouterr().err


def test_the_last_epoch_need_not_be_checkpointed_when_the_host_does_not_save_it(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    config = job_config(tmp_path, max_epochs=3, epoch_stats=True)
    config.checkpoint.frequency = 2  # the host saves epochs 0 and 2 (0-based) ...
    (tmp_path / "epoch_stats.jsonl").write_text("".join(stats_line(e) for e in (1, 2, 3)))
    assert not sweep.trained_to_end(config, tmp_path)[0]
    host_checkpoint(tmp_path / "trained_models" / "frossl" / "0", epoch=2)
    assert sweep.trained_to_end(config, tmp_path) == (True, "")
    config.checkpoint.frequency = 4  # ... or epochs 0, 4, ...: epoch 2 is never saved
    (tmp_path / "trained_models").rename(tmp_path / "elsewhere")
    assert sweep.trained_to_end(config, tmp_path) == (True, "")


def test_a_rerun_job_keeps_what_its_unfinished_attempt_wrote(tmp_path, monkeypatch):
    """Checkpoints, epoch records, spectra and logs stay for the host's auto_resume and the
    report; only a stale done.json goes, and job.json keeps the first start."""

    job_dir = tmp_path / "sweep" / "frossl_seed1_abcdef12"
    job_dir.mkdir(parents=True)
    monkeypatch.chdir(job_dir)
    monkeypatch.delenv(sweep.OWNER_ENV, raising=False)
    config = job_config(job_dir)
    sweep.start_job(config)
    first = json.loads((job_dir / sweep.JOB_FILE).read_text())
    kept = [
        host_checkpoint(job_dir / "trained_models" / "frossl" / "0", epoch=0),
        job_dir / "epoch_stats.jsonl",
        job_dir / "spectrum" / "spectra.jsonl",
        job_dir / "lightning_logs" / "version_0" / "hparams.yaml",
    ]
    for path in kept[1:]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}\n")
    (job_dir / sweep.DONE_FILE).write_text(json.dumps({"config_hash": "stale"}))

    sweep.start_job(config)
    assert all(path.exists() for path in kept)
    assert not (job_dir / sweep.DONE_FILE).exists()
    again = json.loads((job_dir / sweep.JOB_FILE).read_text())
    assert again["started_at_s"] == first["started_at_s"] and again["starts"] == 2
    assert first["starts"] == 1 and again["last_started_at"] >= first["started_at"]


@pytest.mark.parametrize(
    "checkpoint_dir, chdir, inside",
    [
        ("trained_models", True, True),
        (".", True, True),
        ("trained_models/../models", True, True),
        ("../shared", True, False),
        ("{tmp}/shared", True, False),
        ("{job}/trained_models", True, True),
        ("trained_models", False, False),  # relative to the sweep's working directory
    ],
)
def test_a_checkpoint_dir_outside_the_job_folder_is_refused(
    tmp_path, monkeypatch, checkpoint_dir, chdir, inside
):
    job_dir = tmp_path / "sweep" / "frossl_seed1_abcdef12"
    job_dir.mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    config = job_config(job_dir, checkpoint_dir=checkpoint_dir.format(tmp=tmp_path, job=job_dir))
    config.hydra.job.chdir = chdir
    problem = sweep.checkpoint_dir_problem(config, job_dir)
    assert (problem is None) == inside, problem
    if not inside:
        assert "outside its folder" in problem and "checkpoint.dir=" in problem
        if chdir:
            monkeypatch.chdir(job_dir)
        with pytest.raises(ValueError, match="outside its folder"):
            sweep.start_job(config)
        assert not (job_dir / sweep.JOB_FILE).exists()


@requires_host
@pytest.mark.host
def test_compare_jobs_resume_from_their_own_checkpoints():
    cfg = compose_compare([])
    assert cfg["auto_resume"]["enabled"] is True
    # the host skips checkpoints older than max_hours: a sweep of weeks still resumes
    assert cfg["auto_resume"]["max_hours"] >= 24 * 365
    assert not Path(cfg["checkpoint"]["dir"]).is_absolute() and ".." not in cfg["checkpoint"]["dir"]
    assert cfg["checkpoint"]["frequency"] == 1 and cfg["epoch_stats"]["enabled"] is True


def test_a_job_is_finished_only_with_done_json_for_the_same_config(tmp_path):
    assert not sweep.is_finished(tmp_path, "abc")
    (tmp_path / sweep.DONE_FILE).write_text(json.dumps({"config_hash": "abc"}))
    assert sweep.is_finished(tmp_path, "abc")
    assert not sweep.is_finished(tmp_path, "abd")
    (tmp_path / sweep.DONE_FILE).write_text("{half")
    assert not sweep.is_finished(tmp_path, "abc")


def test_a_planned_job_never_started_keeps_its_given_label(tmp_path):
    from frossl_plugin.compare.report import load_sweep

    config = OmegaConf.create({"method": "frossl", "seed": 1, "label": "frossl 4 views"})
    planned = sweep.PlannedJob(["seed=1", "label='frossl 4 views'"], config, tmp_path)
    started = tmp_path / "vicreg_seed1"
    started.mkdir()
    (started / sweep.JOB_FILE).write_text(json.dumps({"method": "vicreg", "seed": 1}))
    sweep.record_plan(tmp_path, [planned])
    labels = {job.name: job.label for job in load_sweep(tmp_path).jobs}
    assert labels == {planned.name: "frossl 4 views", "vicreg_seed1": "vicreg"}


def test_the_owner_watch_leaves_slurm_and_in_process_jobs_alone():
    own = sweep.owner_id()
    assert own and own.split(":")[1] == str(os.getpid())
    assert sweep.watch_owner(own) is None  # the basic launcher's job is the sweep itself
    assert sweep.watch_owner("another-host:1:1") is None  # a SLURM node
    assert sweep.watch_owner(None) is None and sweep.watch_owner("garbage") is None


def test_a_local_sweep_job_with_several_devices_is_refused_before_training(monkeypatch, tmp_path):
    monkeypatch.delenv("SLURM_NTASKS", raising=False)
    job = OmegaConf.create({"devices": [0, 1], "hydra": {"runtime": {"output_dir": str(tmp_path)}}})
    with pytest.raises(ValueError, match=r"devices=\[0, 1\].*rerunning the command line"):
        sweep.start_job(job)
    assert not list(tmp_path.iterdir())  # nothing written, nothing cleared


def test_stop_signals_become_exceptions_and_exit_codes():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        with sweep.StopSignals() as stop:
            signal.raise_signal(signal.SIGINT)
            time.sleep(1)
    assert stop.exit_code == 130
    with pytest.raises(SystemExit) as exit_info:
        with sweep.StopSignals() as stop:
            signal.raise_signal(signal.SIGTERM)
            time.sleep(1)
    assert exit_info.value.code == 143 == stop.exit_code
    assert signal.getsignal(signal.SIGTERM) == before  # handlers restored


class _SignalsFromItsFinalizer:
    """Sends a signal to its own thread from ``__del__``: the handler then runs inside the
    finalizer, where Python prints its exception and drops it (between two jobs of a sweep, a
    DataLoader shuts its workers down in one). ``raise_signal`` sends it to this thread, so the
    C-level handler has run before the loop; ``os.kill`` leaves the thread to the kernel."""

    def __init__(self, signum):
        self.signum = signum

    def __del__(self):
        signal.raise_signal(self.signum)
        for _ in range(10_000):  # bytecode to run the handler in
            pass


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_lost_in_a_finalizer_still_stops_the_sweep(signum):
    expected = KeyboardInterrupt if signum == signal.SIGINT else SystemExit
    # SIG_IGN for SIGINT where a shell ran the suite in the background
    before = signal.getsignal(signum)
    started = time.monotonic()
    with pytest.raises(expected):
        with sweep.StopSignals() as stop:
            _SignalsFromItsFinalizer(signum)  # dropped at once: its finalizer runs here
            assert stop.received == [signum]  # handled, and its exception dropped
            while time.monotonic() < started + 10:  # a job that trains on
                time.sleep(0.01)
    assert time.monotonic() - started < 10, "the stop was lost"
    assert stop.exit_code == 128 + signum
    assert signal.getsignal(signum) == before  # handlers restored


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_sweep_whose_jobs_return_after_a_stop_signal_still_exits_with_its_code():
    with pytest.raises(SystemExit) as exit_info:
        with sweep.StopSignals(redeliver_s=60) as stop:
            _SignalsFromItsFinalizer(signal.SIGTERM)
            stop.raise_if_received()  # what the sweeper calls after each batch of jobs
    assert exit_info.value.code == 143


# --- real sweeps through the unmodified host ----------------------------------------------------


def start_captured(command, cwd, env, new_session=False) -> subprocess.Popen:
    """Starts ``command`` with its output (stdout and stderr together) captured."""

    return subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=new_session,
    )


def tiny_run(demo_data, sweep_dir):
    """Overrides for sweep jobs of two training steps on the demo digits."""

    return [
        *two_step_cpu_overrides(demo_data),
        "augmentations.0.crop_size=16",
        "spectrum_monitor.num_samples=32",
        f"hydra.sweep.dir={sweep_dir}",
    ]


def run_sweep(tmp_path, axes, demo_data, sweep_dir, extra=(), timeout=600):
    done = run_host_script(
        "main_pretrain.py",
        ["-m", "--config-name=compare", *axes, *tiny_run(demo_data, sweep_dir), *extra],
        cwd=tmp_path,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


def finished_jobs(sweep_dir):
    return sorted(p.parent.name for p in Path(sweep_dir).glob(f"*/{sweep.DONE_FILE}"))


@requires_host
@pytest.mark.host
@pytest.mark.slow
def test_a_sweep_runs_resumes_and_reports_variants(tmp_path, demo_data):
    from frossl_plugin.compare.report import load_sweep, write_report

    sweep_dir = tmp_path / "sweep"
    out = run_sweep(tmp_path, ["preset=frossl,vicreg", "seed=1,2"], demo_data, sweep_dir)
    assert "4 jobs" in out and "0 finished before (skipped), 4 to run" in out
    names = finished_jobs(sweep_dir)
    assert [n.rsplit("_", 1)[0] for n in names] == [
        "frossl_seed1",
        "frossl_seed2",
        "vicreg_seed1",
        "vicreg_seed2",
    ]
    for name in names:
        job = json.loads((sweep_dir / name / sweep.JOB_FILE).read_text())
        done = json.loads((sweep_dir / name / sweep.DONE_FILE).read_text())
        assert name.endswith(job["config_hash"][:8]) and done["config_hash"] == job["config_hash"]
        assert (sweep_dir / name / "epoch_stats.jsonl").is_file()
        resolved = OmegaConf.load(sweep_dir / name / sweep.RESOLVED_CONFIG)  # repeatable by hand
        assert resolved.method == job["method"] and resolved.seed == job["seed"]
        assert resolved.hydra.callbacks.frossl_plugin._target_.endswith("FroSSLPluginCallback")
    vicreg = OmegaConf.load(sweep_dir / names[2] / sweep.RESOLVED_CONFIG)
    assert "invariance_weight" not in vicreg.method_kwargs
    # what each job ran with, from the host's args.json, as planned: auto resolved to a width
    plan = json.loads((sweep_dir / sweep.PLAN_FILE).read_text())["jobs"]
    for name in names:
        done = json.loads((sweep_dir / name / sweep.DONE_FILE).read_text())
        assert plan[name]["identity"] == "resolved", plan[name]["identity_note"]
        assert done["ran_with"] == plan[name]["planned_with"] and done["disagreements"] == {}
        assert done["ran_with_source"].endswith(sweep.HOST_ARGS_FILE)
    width = json.loads((sweep_dir / names[0] / sweep.DONE_FILE).read_text())["ran_with"][
        "method_kwargs.proj_output_dim"
    ]
    assert isinstance(width, int)
    write_report(sweep_dir)
    frossl_row = next(
        line
        for line in (sweep_dir / "summary.md").read_text().splitlines()
        if line.startswith("| frossl |")
    )
    assert f"proj_output_dim={width}" in frossl_row

    # rerun: nothing trains again, nothing is rewritten
    stamps = {n: (sweep_dir / n / sweep.DONE_FILE).stat().st_mtime_ns for n in names}
    out = run_sweep(tmp_path, ["preset=frossl,vicreg", "seed=1,2"], demo_data, sweep_dir)
    assert "4 finished before (skipped), 0 to run" in out
    assert stamps == {n: (sweep_dir / n / sweep.DONE_FILE).stat().st_mtime_ns for n in names}

    # a half-finished sweep: the report names the missing job, a rerun runs only that one
    (sweep_dir / names[1] / sweep.DONE_FILE).unlink()
    write_report(sweep_dir)
    assert names[1] in (sweep_dir / "summary.md").read_text().split("## Missing jobs")[1]
    out = run_sweep(tmp_path, ["preset=frossl,vicreg", "seed=1,2"], demo_data, sweep_dir)
    assert "3 finished before (skipped), 1 to run" in out
    assert finished_jobs(sweep_dir) == names

    # a variant into the same folder gets its own jobs and its own label
    run_sweep(
        tmp_path, ["preset=frossl", "seed=1,2", "method_kwargs.center=true"], demo_data, sweep_dir
    )
    assert len(finished_jobs(sweep_dir)) == 6
    labels = {job.label for job in load_sweep(sweep_dir).finished}
    assert labels == {"frossl", "vicreg", "frossl method_kwargs.center=True"}  # as Hydra records it


@requires_host
@pytest.mark.host
@pytest.mark.slow
@pytest.mark.parametrize(
    "launcher",
    [["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], ["hydra/launcher=submitit_local"]],
)
def test_local_parallel_launchers_run_the_same_jobs(tmp_path, demo_data, launcher):
    sweep_dir = tmp_path / "sweep"
    # data-loader workers inside joblib's workers need the callback's start-method reset
    extra = [*launcher, "data.num_workers=1"]
    run_sweep(tmp_path, ["preset=frossl,simclr", "seed=3"], demo_data, sweep_dir, extra)
    names = finished_jobs(sweep_dir)
    assert [n.rsplit("_", 1)[0] for n in names] == ["frossl_seed3", "simclr_seed3"]
    out = run_sweep(tmp_path, ["preset=frossl,simclr", "seed=3"], demo_data, sweep_dir, extra)
    assert "2 finished before (skipped), 0 to run" in out


FAKE_SLURM = {
    "sbatch": 'cp "$1" "$FAKE_SLURM_DIR/submission.sh"\necho "Submitted batch job 4242"\n',
    "sacct": "exit 0\n",
    "squeue": "exit 0\n",
    "scancel": "exit 0\n",
    "srun": "exit 0\n",
}


@requires_host
@pytest.mark.host
@pytest.mark.slow
def test_the_slurm_launcher_submits_one_array_of_the_planned_jobs(tmp_path, demo_data):
    """No cluster: fake Slurm commands record what submitit submits; the sweep is then stopped."""

    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    for name, body in FAKE_SLURM.items():
        (fake_bin / name).write_text("#!/bin/sh\n" + body)
        (fake_bin / name).chmod(0o755)
    env = host_env()
    env.update(PATH=f"{fake_bin}{os.pathsep}{env['PATH']}", FAKE_SLURM_DIR=str(tmp_path))
    sweep_dir = tmp_path / "sweep"
    args = [
        sys.executable,
        str(HOST_PATH / "main_pretrain.py"),
        "-m",
        "--config-name=compare",
        "preset=frossl,vicreg",
        "seed=1",
        *tiny_run(demo_data, sweep_dir),
        "hydra/launcher=submitit_slurm",
        "hydra.launcher.partition=gpu",
        "hydra.launcher.gpus_per_node=1",
        "hydra.launcher.timeout_min=90",
        "hydra.launcher.cpus_per_task=8",
        "hydra.launcher.array_parallelism=4",
    ]
    process = start_captured(args, tmp_path, env, new_session=True)
    deadline = time.time() + 300
    pickles = []
    while time.time() < deadline and process.poll() is None and len(pickles) < 2:
        time.sleep(1)
        pickles = sorted(sweep_dir.glob(".submitit/*/*_submitted.pkl"))
    os.killpg(process.pid, signal.SIGKILL)
    output = process.communicate()[0].decode(errors="replace")
    assert len(pickles) == 2, output[-3000:]

    script = (tmp_path / "submission.sh").read_text()
    for line in (
        "#SBATCH --partition=gpu",
        "#SBATCH --gpus-per-node=1",
        "#SBATCH --time=90",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --array=0-1%2",  # two jobs, at most array_parallelism at once
    ):
        assert line in script, script
    assert "submitit.core._submit" in script
    planned = json.loads((sweep_dir / sweep.PLAN_FILE).read_text())["jobs"]
    assert sweep.OWNER_ENV not in script  # cluster jobs never watch the login node's process
    # the launcher's default max_num_timeout, 0: timeouts would not be requeued, and it says so
    assert "hydra.launcher.max_num_timeout is 0" in output
    submitted = []
    for path in pickles:
        with path.open("rb") as handle:
            overrides = pickle.load(handle).args[0]
        subdir = [o.split("=", 1)[1] for o in overrides if o.startswith("hydra.sweep.subdir=")]
        submitted.append(subdir[0])
        assert f"preset={planned[subdir[0]]['method']}" in overrides
    assert sorted(submitted) == sorted(planned)


def complete_checkpoints(sweep_dir):
    from frossl_plugin.host.resume import is_complete_checkpoint

    found = sweep_dir.glob("*/trained_models/*/*/*-ep=*.ckpt")
    return sorted(
        (path for path in found if is_complete_checkpoint(path)),
        key=lambda path: int(path.stem.rsplit("-ep=", 1)[1]),
    )


def resumed_run_overrides(demo_data, sweep_dir, epochs):
    """tiny_run's overrides with ``epochs`` epochs of three steps."""

    keep = [
        o for o in tiny_run(demo_data, sweep_dir) if "max_epochs" not in o and "limit_tr" not in o
    ]
    return [*keep, f"max_epochs={epochs}", "++limit_train_batches=3"]


@requires_host
@pytest.mark.host
@pytest.mark.slow
def test_a_sweep_killed_during_a_job_resumes_it_from_its_last_checkpoint(tmp_path, demo_data):
    """SIGKILL once the job's first checkpoint is complete, a pause, the same command again:
    the job continues from its checkpoint, ends finished, and the report has one curve timed by
    its training only."""

    import csv

    from frossl_plugin.compare.report import write_report

    sweep_dir, epochs, stopped_s = tmp_path / "sweep", 3, 5.0
    args = ["-m", "--config-name=compare", "preset=frossl", "seed=1"]
    args += resumed_run_overrides(demo_data, sweep_dir, epochs)
    began = time.monotonic()
    process = start_captured(
        [sys.executable, str(HOST_PATH / "main_pretrain.py"), *args],
        tmp_path,
        host_env(),
        new_session=True,
    )
    assert wait_for(lambda: complete_checkpoints(sweep_dir) or process.poll() is not None, 600)
    os.killpg(process.pid, signal.SIGKILL)
    output = process.communicate(timeout=60)[0].decode(errors="replace")
    assert process.returncode == -signal.SIGKILL, output[-3000:]
    (job,) = [path.parent for path in sweep_dir.glob(f"*/{sweep.JOB_FILE}")]
    assert not (job / sweep.DONE_FILE).exists()
    newest = complete_checkpoints(sweep_dir)[-1]
    killed_at = int(newest.stem.rsplit("-ep=", 1)[1]) + 1  # epochs its checkpoint holds
    assert killed_at < epochs, "the job ended before it was killed"
    first_record = (job / "epoch_stats.jsonl").read_text().splitlines()[0]
    time.sleep(stopped_s)  # the job sits stopped: not training time

    rerun = run_host_script("main_pretrain.py", args, cwd=tmp_path)
    elapsed = time.monotonic() - began
    out = rerun.stdout + rerun.stderr
    assert rerun.returncode == 0, out[-3000:]
    assert "0 finished before (skipped), 1 to run, 1 of them with checkpoints" in out
    resumed_from = newest.relative_to(job)  # checkpoint.dir is relative to the job's folder
    assert f"Resuming from previous checkpoint that matches specifications: '{resumed_from}'" in out
    assert (job / sweep.DONE_FILE).is_file()
    lines = (job / "epoch_stats.jsonl").read_text().splitlines()
    assert lines[0] == first_record  # written before the kill, never rewritten
    records = [json.loads(line) for line in lines]
    assert [r["epoch"] for r in records if r["epoch"] <= killed_at] == list(range(1, killed_at + 1))
    resumed = [r for r in records if r["part"] == 1]
    assert [r["epoch"] for r in resumed] == list(range(killed_at + 1, epochs + 1))
    assert {r["resumed_from_epoch"] for r in resumed} == {killed_at}

    write_report(sweep_dir)
    with (sweep_dir / "runs.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["epoch"]) for row in rows] == list(range(1, epochs + 1))
    times = [float(row["training_time_s"]) for row in rows]
    by_epoch = {r["epoch"]: r for r in records}  # the kept record of each epoch is its last
    assert times == pytest.approx(
        list(itertools.accumulate(by_epoch[e]["epoch_time_s"] for e in range(1, epochs + 1)))
    )
    # summed over the parts: up to the checkpoint, then the resumed part's own clock
    assert times[-1] == pytest.approx(times[killed_at - 1] + by_epoch[epochs]["wall_time_s"])
    assert times[-1] < elapsed - stopped_s  # neither the pause nor the start-ups count
    summary = (sweep_dir / "summary.md").read_text()
    assert "- jobs finished: 1 of 1" in summary


@requires_host
@pytest.mark.host
def test_the_sweeper_refuses_a_shared_checkpoint_dir_before_launching(tmp_path, demo_data):
    sweep_dir = tmp_path / "sweep"
    done = run_host_script(
        "main_pretrain.py",
        ["-m", "--config-name=compare", "preset=frossl,vicreg", "seed=1"]
        + tiny_run(demo_data, sweep_dir)
        + [f"checkpoint.dir={tmp_path / 'shared'}"],
        cwd=tmp_path,
    )
    assert done.returncode != 0
    assert "2 of 2 jobs: checkpoint.dir=" in done.stderr and "outside its folder" in done.stderr
    assert not list(sweep_dir.glob(f"*/{sweep.JOB_FILE}"))  # nothing launched


FAKE_SCONTROL = 'echo "$@" >> "$FAKE_SLURM_DIR/scontrol.log"\n'


@requires_host
@pytest.mark.host
@pytest.mark.slow
def test_a_slurm_job_at_its_time_limit_is_requeued_by_submitit_and_resumes(tmp_path, demo_data):
    """No cluster: fake Slurm commands, and the job's batch command run by hand with the
    variables SLURM sets. USR2, which SLURM sends signal_delay_s before the time limit
    (``#SBATCH --signal``), makes submitit call the launcher's checkpoint() and requeue the
    job; run again, as SLURM reruns a requeued job, it resumes from its checkpoint."""

    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    for name, body in {**FAKE_SLURM, "scontrol": FAKE_SCONTROL}.items():
        (fake_bin / name).write_text("#!/bin/sh\n" + body)
        (fake_bin / name).chmod(0o755)
    env = host_env()
    env.update(PATH=f"{fake_bin}{os.pathsep}{env['PATH']}", FAKE_SLURM_DIR=str(tmp_path))
    sweep_dir, epochs = tmp_path / "sweep", 3
    args = [sys.executable, str(HOST_PATH / "main_pretrain.py"), "-m", "--config-name=compare"]
    args += ["preset=frossl", "seed=1", *resumed_run_overrides(demo_data, sweep_dir, epochs)]
    # a one-minute limit: submitit takes any signal after min(0.8 x limit, limit - 10 min) of
    # running for the time limit; up to two requeues after a timeout
    args += ["hydra/launcher=submitit_slurm", "hydra.launcher.timeout_min=1"]
    args += ["hydra.launcher.max_num_timeout=2"]
    process = start_captured(args, tmp_path, env, new_session=True)
    assert wait_for(
        lambda: list(sweep_dir.glob(".submitit/*/*_submitted.pkl")) or process.poll() is not None,
        300,
    )
    time.sleep(1)  # the pickle is moved into place whole; let sbatch's copy finish too
    os.killpg(process.pid, signal.SIGKILL)  # the login node's sweep is not needed any more
    output = process.communicate()[0].decode(errors="replace")
    (submitted,) = sweep_dir.glob(".submitit/*/*_submitted.pkl")
    assert "max_num_timeout is 0" not in output
    script = (tmp_path / "submission.sh").read_text()
    assert "#SBATCH --signal=USR2@120" in script and "#SBATCH --time=1" in script
    batch_command = shlex.split(script.strip().splitlines()[-1])  # srun ... python -u -m ...
    batch_command = batch_command[batch_command.index("-u") - 1 :]
    with submitted.open("rb") as handle:
        planned = pickle.load(handle)
    job_id = submitted.parent.name
    slurm_env = {
        **env,
        "SUBMITIT_EXECUTOR": "slurm",  # the batch script exports it
        "SLURM_JOB_ID": job_id,
        "SLURM_JOB_NAME": "main_pretrain",
        "SLURM_NTASKS": "1",
        "SLURM_JOB_NUM_NODES": "1",
        "SLURM_NODEID": "0",
        "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0",
        "SLURM_NODELIST": "localhost",
    }
    slurm_env.pop(sweep.OWNER_ENV, None)

    first = start_captured(batch_command, tmp_path, slurm_env)
    assert wait_for(lambda: complete_checkpoints(sweep_dir) or first.poll() is not None, 600)
    first.send_signal(signal.SIGUSR2)  # SLURM's warning before the time limit
    log = first.communicate(timeout=120)[0].decode(errors="replace")
    assert first.returncode != 0, log[-3000:]
    assert "this job is timed-out" in log and "Calling checkpoint method" in log, log[-3000:]
    assert (tmp_path / "scontrol.log").read_text().split() == ["requeue", job_id]
    (job,) = [path.parent for path in sweep_dir.glob(f"*/{sweep.JOB_FILE}")]
    assert not (job / sweep.DONE_FILE).exists()
    with submitted.open("rb") as handle:
        requeued = pickle.load(handle)  # what the launcher's checkpoint() resubmitted
    assert type(requeued.function).__name__ == "SlurmLauncher"
    assert requeued.args[:4] == planned.args[:4]  # the same job: overrides, folder key, index
    assert requeued._timeout_countdown == planned._timeout_countdown - 1 == 1
    newest = complete_checkpoints(sweep_dir)[-1]

    second = subprocess.run(
        batch_command, cwd=tmp_path, env=slurm_env, capture_output=True, text=True, timeout=600
    )
    log = second.stdout + second.stderr
    assert second.returncode == 0, log[-3000:]
    resumed_from = newest.relative_to(job)
    assert f"Resuming from previous checkpoint that matches specifications: '{resumed_from}'" in log
    assert (job / sweep.DONE_FILE).is_file()
    with (submitted.parent / f"{job_id}_0_result.pkl").open("rb") as handle:
        outcome, job_return = pickle.load(handle)
    assert outcome == "success" and job_return.status.name == "COMPLETED"
    # the first part may have recorded an epoch past its newest checkpoint before the signal came:
    # the resumed part then trains that epoch again
    stopped_at = int(newest.stem.rsplit("-ep=", 1)[1]) + 1  # epochs its checkpoint holds
    assert stopped_at < epochs, "the job ended before the signal"
    records = [json.loads(line) for line in (job / "epoch_stats.jsonl").read_text().splitlines()]
    first_part = [r["epoch"] for r in records if r["part"] == 0]
    assert first_part == list(range(1, len(first_part) + 1)) and len(first_part) >= stopped_at
    resumed = [r for r in records if r["part"] == 1]
    assert [r["epoch"] for r in resumed] == list(range(stopped_at + 1, epochs + 1))
    assert {r["resumed_from_epoch"] for r in resumed} == {stopped_at}


def wait_for(predicate, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.5)
    return False


def processes_mentioning(text):
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and text in (proc / "cmdline").read_bytes().decode(
                errors="replace"
            ):
                found.append(int(proc.name))
        except OSError:
            continue
    return found


@requires_host
@pytest.mark.host
@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_compare_stopped_by_a_signal_keeps_finished_jobs_and_resumes(tmp_path, demo_data, signum):
    sweep_dir = tmp_path / "cmp"
    command = [
        sys.executable,
        "-m",
        "frossl_plugin.cli",
        "compare",
        "--methods",
        "frossl,vicreg",
        "--seeds",
        "1",
        "--epochs",
        "1",
        "--data",
        str(demo_data),
        "--out",
        str(sweep_dir),
        "--host",
        str(HOST_PATH),
        *[
            o
            for o in tiny_run(demo_data, sweep_dir)[2:-1]
            if "limit_train" not in o and "max_epochs" not in o
        ],
        "++limit_train_batches=60",  # about ten seconds: the second job is stopped while it trains
    ]
    process = start_captured(command, tmp_path, host_env())
    assert wait_for(lambda: len(finished_jobs(sweep_dir)) == 1, 300), "no job finished"
    first = finished_jobs(sweep_dir)[0]
    stamp = (sweep_dir / first / sweep.DONE_FILE).stat().st_mtime_ns
    process.send_signal(signum)
    output = process.communicate(timeout=120)[0].decode(errors="replace")

    assert process.returncode == 128 + signum, output[-3000:]
    assert "Rerun the same command" in output
    assert wait_for(lambda: not processes_mentioning(str(sweep_dir)), 30), "a job kept running"
    assert finished_jobs(sweep_dir) == [first]
    assert (sweep_dir / first / sweep.DONE_FILE).stat().st_mtime_ns == stamp
    assert "Missing jobs" in (sweep_dir / "summary.md").read_text()

    rerun = subprocess.run(
        command,
        cwd=tmp_path,
        env=host_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert rerun.returncode == 0, rerun.stdout[-3000:]
    assert "1 finished before (skipped), 1 to run" in rerun.stdout + rerun.stderr
    assert len(finished_jobs(sweep_dir)) == 2
    assert (sweep_dir / first / sweep.DONE_FILE).stat().st_mtime_ns == stamp


# --- the front door ------------------------------------------------------------------------------


@requires_host
@pytest.mark.host
def test_compare_dry_run_prints_the_multirun_it_would_launch(tmp_path, demo_data, capsys):
    from frossl_plugin.cli import main

    code = main(
        [
            "compare",
            "--methods",
            "frossl,byol",
            "--seeds",
            "1,2,3",
            "--epochs",
            "30",
            "--data",
            str(demo_data),
            "--out",
            str(tmp_path / "o"),
            "--dry-run",
            "optimizer.batch_size=64,128",
            "hydra/launcher=joblib",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0
    for part in (
        "main_pretrain.py -m --config-name=compare",
        "preset=frossl,byol",
        "seed=1,2,3",
        "max_epochs=30",
        "scheduler.warmup_epochs=3",
        f"hydra.sweep.dir={tmp_path / 'o'}",
        f"data.train_path={demo_data / 'train'}",
        "augmentations.0.crop_size=",
        "optimizer.batch_size=64,128",
        "hydra/launcher=joblib",
    ):
        assert part in printed
    assert not (tmp_path / "o" / sweep.PLAN_FILE).exists()


@requires_host
@pytest.mark.host
def test_compare_small_extra_views_add_small_crops_to_frossl_jobs(tmp_path, demo_data, capsys):
    from frossl_plugin.cli import main

    argv = ["compare", "--methods", "frossl", "--epochs", "2", "--data", str(demo_data)]
    argv += ["--out", str(tmp_path / "o"), "--crop-size", "30", "--views", "8", "--dry-run"]
    assert main(argv + ["--extra-views", "small"]) == 0
    printed = capsys.readouterr().out
    sweep_command = shlex.split(printed.splitlines()[-1].removeprefix("compare: "))
    expected = [
        "augmentations=cifar_symmetric_small_views",
        "augmentations.1.num_crops=6",
        "augmentations.0.crop_size=30",
        "augmentations.1.crop_size=20",
        "label='frossl 8 views (6 small)'",
    ]
    for part in expected:
        assert part in sweep_command
    config = compose_compare(expected)
    crops = [(group["crop_size"], group["num_crops"]) for group in config["augmentations"]]
    assert crops == [(30, 2), (20, 6)] and config["label"] == "frossl 8 views (6 small)"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--methods", "frossl,frossl"], "--methods"),
        (["--seeds", ","], "--seeds"),
        (["--epochs", "0"], "--epochs must be >= 1"),
        (["--views", "1"], "--views must be >= 2, but found 1"),
        (["--views", "4"], "only frossl takes more than 2 views"),
    ],
)
def test_compare_refuses_bad_arguments(tmp_path, capsys, argv, message):
    from frossl_plugin.cli import main

    base = {"--epochs": "1", "--data": str(tmp_path)}
    base.update(dict(zip(argv[::2], argv[1::2])))
    code = main(["compare", *[item for pair in base.items() for item in pair], "--dry-run"])
    assert code == 2 and message in capsys.readouterr().err


def test_only_compare_takes_hydra_overrides():
    from frossl_plugin.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["report", "somewhere", "optimizer.batch_size=64"])
    assert exit_info.value.code == 2
