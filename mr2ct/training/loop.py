"""The step loop shared by CycleGAN and U-Net training.

It runs a Keras model's own ``train_step`` under a ``tf.distribute``
strategy (``strategy.run`` of the per-replica step, optionally XLA-compiled),
and adds what long runs need: checkpoints with ``tf.train.CheckpointManager``
every K steps (never half-written: TensorFlow writes checkpoint files under
temporary names and updates the index atomically), exact resume from the
latest checkpoint, a checkpoint on SIGINT/SIGTERM before exiting, TensorBoard
scalars, a progress line with the losses and an ETA, and ``status.json``.

Under ``MultiWorkerMirroredStrategy`` it follows TensorFlow's multi-worker
contract (see :mod:`mr2ct.training.cluster`): every worker restores the
chief's latest checkpoint, runs every step and every save (a save is
collective); only the chief writes into the run folder (checkpoints,
summaries, image summaries, ``status.json``) and prints progress, the other
workers save into a temporary folder of their own, removed after each save. A
stop request on any worker stops all of them at the same step, and a lost
worker stops the others with a :class:`~mr2ct.errors.ClusterError` that names
it (TensorFlow's coordination service notices a dead peer within seconds).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import tempfile
import threading
import time

import tensorflow as tf

from mr2ct._atomic import atomic_write_json
from mr2ct.errors import ClusterError, Mr2ctError
from mr2ct.training.cluster import PEER_FAILURES, lost_worker_error, worker_role
from mr2ct.training.progress import Progress
from mr2ct.training.tracking import checkpoint_items


@dataclasses.dataclass
class LoopResult:
    """How a training loop ended."""

    step: int
    total_steps: int
    interrupted: bool = False
    resumed_from: int = 0

    @property
    def finished(self) -> bool:
        return self.step >= self.total_steps


class TrainingLoop:
    """Runs ``model.train_step`` for a number of steps with checkpoints and summaries.

    Args:
        model: a compiled ``keras.Model`` whose ``train_step(data)`` updates it
            and whose ``metrics`` report the losses.
        strategy: the ``tf.distribute`` strategy the model was built under.
        dataset: a repeating ``tf.data.Dataset`` of global batches, or a
            callable ``start_step -> Dataset`` called once the checkpoint is
            restored, so the data order can depend on the step a run resumes
            from (and an interrupted, resumed run stays reproducible).
        run_dir: folder for ``checkpoints/``, ``logs/`` and ``status.json``.
        total_steps: the step at which training is complete.
        checkpoint_objects: extra trackables to save besides the model
            (optimizers, pools), as a dict of names.
        checkpoint_every: steps between checkpoints. Defaults to `1000`.
        keep_checkpoints: checkpoints kept. Defaults to `3`.
        summary_every: steps between scalar summaries. Defaults to `100`.
        steps_per_execution: steps per call of the compiled function.
            Defaults to `1`.
        jit_compile: XLA-compile the per-replica step. Defaults to `False`.
        learning_rate: callable ``step -> float`` logged as ``learning_rate``.
            Defaults to `None`.
        on_summary: callable ``(step, samples)`` for extra summaries such as
            images, called every ``image_every`` steps inside the summary
            writer; ``samples`` is the run's first global batch, the same at
            every call. Defaults to `None`.
        image_every: steps between ``on_summary`` calls. Defaults to `1000`.
        before_save: callable ``(step)`` called on the chief before each
            checkpoint, for files that must exist whenever a checkpoint does.
            Defaults to `None`.
        after_save: callable ``(step, checkpoint_path)`` called on the chief
            after each checkpoint, e.g. to validate it. Defaults to `None`.
        progress: print a progress line (on the chief). Defaults to `True`.
        data_phases: steps at which the data changes (e.g. the end of
            coarse-to-fine training's low-resolution steps): at each, the
            ``dataset`` callable is called again with that step and training
            goes on with its batches. Needs a callable ``dataset``. Defaults
            to `()`.
    """

    def __init__(
        self,
        model,
        strategy,
        dataset,
        run_dir,
        total_steps,
        checkpoint_objects=None,
        checkpoint_every=1000,
        keep_checkpoints=3,
        summary_every=100,
        steps_per_execution=1,
        jit_compile=False,
        learning_rate=None,
        on_summary=None,
        image_every=1000,
        before_save=None,
        after_save=None,
        progress=True,
        data_phases=(),
    ):
        if data_phases and not callable(dataset):
            raise ValueError("data_phases needs a callable dataset (start_step -> Dataset)")
        self.data_phases = sorted({int(p) for p in data_phases})
        self.model = model
        self.strategy = strategy
        self.dataset = dataset
        self.run_dir = os.fspath(run_dir)
        self.total_steps = int(total_steps)
        self.checkpoint_every = int(checkpoint_every)
        self.summary_every = int(summary_every)
        self.steps_per_execution = int(steps_per_execution)
        self.learning_rate = learning_rate
        self.on_summary = on_summary
        self.image_every = int(image_every)
        self.before_save = before_save
        self.after_save = after_save
        self.progress = progress
        self.role = worker_role(strategy)
        self.checkpoint_dir = os.path.join(self.run_dir, "checkpoints")
        with strategy.scope():
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.checkpoint = tf.train.Checkpoint(
            step=self.step, **checkpoint_items(model=model, **(checkpoint_objects or {}))
        )
        # Only the chief manages the run's checkpoints; the others save into throwaway folders.
        self.manager = (
            tf.train.CheckpointManager(self.checkpoint, self.checkpoint_dir, max_to_keep=keep_checkpoints)
            if self.role.is_chief else None
        )
        self._stop = threading.Event()
        self._restored_step = None
        self._step_fn = self._make_step_function(jit_compile)

    def _make_step_function(self, jit_compile):
        replica_step = self.model.train_step
        if jit_compile:
            replica_step = tf.function(replica_step, jit_compile=True)

        @tf.function
        def run_steps(iterator, count):
            for _ in tf.range(count):
                self.strategy.run(replica_step, args=(next(iterator),))

        return run_steps

    def restore(self) -> int:
        """Restore the (chief's) latest checkpoint if there is one; returns the step restored."""
        if self._restored_step is not None:
            return self._restored_step
        latest = tf.train.latest_checkpoint(self.checkpoint_dir)
        if latest is None:
            self._restored_step = 0
            return 0
        try:
            self.checkpoint.restore(latest).assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.OpError) as exc:
            raise Mr2ctError(
                f"{latest}: cannot restore this checkpoint into the configured model "
                f"({type(exc).__name__}: {str(exc).splitlines()[0][:300]})"
            ) from None
        self._restored_step = int(self.step.numpy())
        return self._restored_step

    def _save(self, chief, step):
        if chief and self.before_save is not None:
            self.before_save(step)
        path = self.save()
        if chief and self.after_save is not None:
            self.after_save(step, path)

    def save(self) -> str | None:
        """Save a checkpoint at the current step: into the run folder on the chief, a temporary one elsewhere.

        Every worker must call this at the same step: a save is collective.
        Returns the checkpoint's path on the chief, `None` on the others.
        """
        step = int(self.step.numpy())
        if self.manager is not None:
            path = self.manager.save(checkpoint_number=step)
            self._write_status()
            return path
        folder = self._temporary_checkpoint_folder()
        try:
            tf.train.CheckpointManager(self.checkpoint, folder, max_to_keep=1).save(checkpoint_number=step)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return None

    def _temporary_checkpoint_folder(self) -> str:
        """A new folder for this worker's throw-away checkpoint, named with its process id.

        Removes first the folders of this role whose process is gone: a worker killed while saving
        (SIGKILL, a lost machine) cannot remove its own.
        """
        prefix = f"mr2ct-{self.role.task_type}{self.role.task_id}-checkpoint-"
        root = tempfile.gettempdir()
        for name in os.listdir(root):
            pid = name[len(prefix):].split("-", 1)[0] if name.startswith(prefix) else ""
            if pid.isdigit() and not _process_exists(int(pid)):
                shutil.rmtree(os.path.join(root, name), ignore_errors=True)
        return tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-")

    def _write_status(self, state="running"):
        if not self.role.is_chief:
            return
        atomic_write_json(
            os.path.join(self.run_dir, "status.json"),
            {
                "step": int(self.step.numpy()),
                "total_steps": self.total_steps,
                "state": state,
                "checkpoint": tf.train.latest_checkpoint(self.checkpoint_dir),
                "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
            },
        )

    def _metric_values(self):
        return {m.name: float(m.result()) for m in self.model.metrics}

    def _request_stop(self, signum, frame):
        self._stop.set()

    def _sum_over_replicas(self, values) -> list[int]:
        """The sum over every replica of each of ``values`` (a collective: every worker must call it)."""
        per_replica = self.strategy.experimental_distribute_values_from_function(
            lambda context: tf.constant(values, tf.int64)
        )
        return [int(v) for v in self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)]

    def _check_same_start(self, start: int):
        """Refuse to train when the workers did not all restore the same checkpoint."""
        total, squares = self._sum_over_replicas([start, start * start])
        if total * total != squares * self.strategy.num_replicas_in_sync:  # equal only if every start is the same
            raise ClusterError(
                f"{self.role.describe()} restored step {start} from {self.checkpoint_dir}, but the workers "
                "did not all restore the same step: every worker must see the chief's run folder "
                "(put it on a shared filesystem)"
            )

    def _stop_requested(self) -> bool:
        """Whether this worker, or under several workers any of them, was asked to stop."""
        if self.role.num_workers == 1:
            return self._stop.is_set()
        return self._sum_over_replicas([int(self._stop.is_set())])[0] > 0

    def run(self, max_steps=None) -> LoopResult:
        """Train from the latest checkpoint up to ``min(total_steps, max_steps)``."""
        start = self.restore()
        if self.role.num_workers > 1:
            self._check_same_start(start)
        end = self.total_steps if max_steps is None else min(self.total_steps, int(max_steps))
        result = LoopResult(step=start, total_steps=self.total_steps, resumed_from=start)
        if start >= end:
            self._write_status("finished" if start >= self.total_steps else "stopped")
            return result

        chief = self.role.is_chief
        writer = (tf.summary.create_file_writer(os.path.join(self.run_dir, "logs")) if chief
                  else tf.summary.create_noop_writer())
        progress = Progress(end, start=start, enabled=self.progress and chief)
        iterator, samples = self._data(start)
        phases = [p for p in self.data_phases if start < p < end]
        on_summary = self.on_summary if chief else None
        handlers = self._install_signal_handlers()
        step = start
        values = {}
        stop = False
        try:
            while step < end and not stop:
                # Run up to the next checkpoint or summary boundary, or the end.
                boundary = min(
                    end,
                    _next_multiple(step, self.checkpoint_every),
                    _next_multiple(step, self.summary_every),
                    step + self.steps_per_execution,
                    *[p for p in phases if p > step],
                )
                self._step_fn(iterator, tf.constant(boundary - step, tf.int64))
                step = boundary
                self.step.assign(step)
                values = self._metric_values()  # collective under several workers: read on all
                progress.update(step, values)
                if step % self.summary_every == 0 or step == end:
                    with writer.as_default(step=step):
                        for name, value in values.items():
                            tf.summary.scalar(f"loss/{name}", value)
                        if self.learning_rate is not None:
                            tf.summary.scalar("learning_rate", self.learning_rate(step))
                    for metric in self.model.metrics:
                        metric.reset_state()
                if on_summary is not None and (step % self.image_every == 0 or step == end):
                    with writer.as_default(step=step):
                        on_summary(step, samples)
                if step % self.checkpoint_every == 0 or step == end:
                    self._save(chief, step)
                stop = self._stop_requested()
                if step in phases and not stop:
                    iterator, samples = self._data(step)
                    progress.restart_rate(step)
            if stop and step < end:
                self._save(chief, step)
                result.interrupted = True
        except PEER_FAILURES as exc:
            if self.role.num_workers == 1:
                raise
            self._write_status("failed")
            saved = tf.train.latest_checkpoint(self.checkpoint_dir)
            raise lost_worker_error(self.role, exc, step, int(saved.rsplit("-", 1)[1]) if saved else 0) from None
        finally:
            self._restore_signal_handlers(handlers)
            writer.flush()
            progress.close(step, values)
        result.step = step
        self._write_status("finished" if result.finished else ("interrupted" if result.interrupted else "stopped"))
        return result

    def _data(self, step):
        """The distributed iterator of the batches from ``step`` on, and the image-summary samples."""
        dataset = self.dataset(step) if callable(self.dataset) else self.dataset
        samples = None
        if self.on_summary is not None:
            # From a dataset of its own where there is a factory: every iterator of one dataset draws its
            # shuffle seeds from the same generators, and the read-ahead of a dropped iterator can go on
            # drawing them, so sampling the training dataset made its batches depend on timing (two-worker
            # runs then matched one process in some runs and not in others). Every worker takes the
            # samples, so that a dataset given as an object is iterated alike on all of them.
            source = self.dataset(step) if callable(self.dataset) else dataset
            samples = next(iter(source.take(1)))
        return iter(self.strategy.experimental_distribute_dataset(dataset)), samples

    def _install_signal_handlers(self):
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, self._request_stop)
        return previous

    @staticmethod
    def _restore_signal_handlers(previous):
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _next_multiple(step, every):
    return (step // every + 1) * every


def _process_exists(pid: int) -> bool:
    """Whether a process with this id exists on this machine (also one of another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
