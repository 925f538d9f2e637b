"""``hydra/sweeper=frossl_resumable``: Hydra's basic sweeper, resumable.

It composes every job before launching any, gives each a folder named by its method, seed and
config hash (``<method>_seed<seed>_<hash>``, stable across reruns and launchers), skips the jobs
whose folder holds ``done.json`` for the same config, and hands the rest to whichever Hydra
launcher is configured (basic, joblib, submitit_local, submitit_slurm, ...). SIGINT or SIGTERM
stops the sweep with exit code 130 or 143; rerunning the command resumes it: an unfinished job
runs again in its folder, where the host's ``auto_resume`` continues it from its last checkpoint
(the sweeper refuses a ``checkpoint.dir`` outside the job's folder before launching anything).

On SLURM, requeueing is submitit's: the launcher's ``checkpoint()`` resubmits the same job when
submitit catches the signal SLURM sends before the time limit (or on preemption, where the
cluster signals it), and the job resumes from its checkpoint like any rerun. Timeouts are
requeued only ``hydra.launcher.max_num_timeout`` times, 0 in the launcher's defaults: the sweeper
says so when it is 0.

The hash is that of the config as the host will run it (frossl_plugin/compare/sweep.py,
``resolve_task``: the host's ``parse_cfg`` and the method's ``add_and_assert_specific_cfg``), so
a job whose resolved values change (FroSSL's ``proj_output_dim: auto`` under another rule) gets a
new folder and runs again. Where the host cannot resolve a job's config, the sweeper says so and
hashes the composed config instead.
"""

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper, BasicSweeperConf
from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser


@dataclass
class ResumableSweeperConf(BasicSweeperConf):
    _target_: str = "hydra_plugins.frossl_plugin.frossl_sweeper.ResumableSweeper"


ConfigStore.instance().store(
    group="hydra/sweeper",
    name="frossl_resumable",
    node=ResumableSweeperConf,
    provider="frossl-plugin",
)


def _say(message: str) -> None:
    print(f"frossl-plugin sweep: {message}", file=sys.stderr, flush=True)


class ResumableSweeper(BasicSweeper):
    def sweep(self, arguments: List[str]) -> Any:
        import os

        from frossl_plugin.compare import sweep as jobs

        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides(self._parse_config() + list(arguments))
        all_overrides = [job for batch in self.split_arguments(overrides, None) for job in batch]
        sweep_dir = Path(str(self.config.hydra.sweep.dir)).absolute()
        loader = self.hydra_context.config_loader
        planned, problems = [], []
        for job in all_overrides:
            config = loader.load_sweep_config(self.config, list(job))
            planned.append(jobs.PlannedJob(job, config, sweep_dir))
            problem = jobs.checkpoint_dir_problem(config, sweep_dir / planned[-1].name)
            if problem:
                problems.append(problem)
        if problems:
            raise ValueError(f"{len(problems)} of {len(planned)} jobs: {problems[0]}")
        jobs.record_plan(sweep_dir, planned)
        unresolved = [job for job in planned if job.identity != "resolved"]
        if unresolved:
            _say(
                f"{len(unresolved)} of {len(planned)} jobs are named by their composed config, "
                "not by the config the host will run (a change of what the host resolves, "
                "such as proj_output_dim: auto, will not rerun them): "
                f"{unresolved[0].name}: {unresolved[0].resolution.note}"
            )
        todo = [job for job in planned if not job.finished]
        resuming = sum(any((sweep_dir / job.name).rglob("*.ckpt")) for job in todo)
        _say(
            f"{len(planned)} jobs in {sweep_dir}: {len(planned) - len(todo)} finished before "
            f"(skipped), {len(todo)} to run"
            + (f", {resuming} of them with checkpoints of an earlier attempt" if resuming else "")
        )
        launcher = str(self.config.hydra.launcher.get("_target_", ""))
        if launcher.endswith("SlurmLauncher") and not self.config.hydra.launcher.get(
            "max_num_timeout"
        ):
            _say(
                "hydra.launcher.max_num_timeout is 0: a job that reaches its time limit is not "
                "requeued (a preempted one is); to have submitit requeue it and the job resume "
                "from its checkpoint, set hydra.launcher.max_num_timeout=N (up to N time limits)"
            )
        owner = jobs.owner_id()
        if owner and "slurm" not in launcher.lower():
            os.environ[jobs.OWNER_ENV] = owner
        size = self.max_batch_size or len(todo) or 1
        returns = []
        with jobs.StopSignals() as stop:
            try:
                for start in range(0, len(todo), size):
                    batch = [job.launch_overrides() for job in todo[start : start + size]]
                    results = self.launcher.launch(batch, initial_job_idx=start)
                    returns.append(results)
                    for result in results:
                        _ = result.return_value  # raises the error of a failed job
                    stop.raise_if_received()
            except BaseException:
                if not stop.received:
                    raise
                stop.stopping()
                finished = sum(
                    job.finished or jobs.is_finished(sweep_dir / job.name, job.digest)
                    for job in planned
                )
                _say(
                    f"stopped by signal {stop.received[0]}; {finished} of {len(planned)} jobs "
                    "are finished and kept. Rerun the same command to run the others (an "
                    "unfinished job resumes from its last checkpoint)."
                )
                raise SystemExit(stop.exit_code) from None
        return returns
