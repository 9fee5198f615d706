"""What a run cost: wall time, peak memory, training throughput and the device, for ``metrics.json``.

The pipeline wraps every stage in a :class:`RunCost` (``with RunCost() as cost: ...``) and merges
``cost.metrics()`` into the run's ``metrics.json``; :func:`rcollapse.runs.training_run.build_trainer`
adds a :class:`ThroughputMeter` to every Lightning trainer, which hands its counts to the
``RunCost`` active in the process when its fit ends. The keys (all floats but ``cost/device``):

``cost/wall_s``
    seconds from seeding to the stage's return (the whole stage: data, model, fit, test, figures;
    for PPO also the shared offline ensemble's training, a subprocess, when it is not cached yet).
``cost/peak_rss_gb``
    the process's peak resident memory over the stage, in GB (10^9 bytes). On Linux the peak is
    reset when the stage starts (``/proc/self/clear_refs``), so in a multirun on the basic
    launcher (its jobs run one after another in one process) each job gets its own peak; where
    that is not possible it is ``getrusage``'s peak of the whole process so far. DataLoader
    worker processes are not included.
``cost/peak_gpu_mem_gb``
    only where CUDA is available: the most memory PyTorch's allocator held for tensors at once
    (``torch.cuda.max_memory_allocated``, reset when the stage starts; the largest over the
    process's GPUs). The allocator's cache and the CUDA context come on top.
``cost/device``
    a string: ``"cuda: NVIDIA H200 x1"`` (the GPU's name, the number of processes/GPUs that
    trained together), ``"cpu: <model name>, N threads"`` (``x P processes`` with DDP on CPUs). The
    device of the run's trainers; a stage without a trainer (theory, bandit) ran on the CPU.
``cost/train_s``, ``cost/train_batches``, ``cost/train_batches_per_s``
    the time spent inside training batches (``on_train_batch_start`` .. ``on_train_batch_end``:
    forward, backward, optimiser step; no data loading, validation, checkpoints or testing) and
    the number of training batches.
``cost/train_sequences_per_s``
    sequences trained on per second of that time: the rows of a batch's ``input_ids`` (reward
    stage: B·n completions; ensemble: 2 per preference pair, chosen and rejected), the rows of
    cached ``features`` (ensemble phase 2: 2 per pair), one rollout per prompt (PPO: a batch is
    a list of prompts). Absent when no batch could be counted.
``cost/train_tokens_per_s``
    non-padding tokens (``attention_mask``'s ones) per second, over the batches that carried
    tokens only (cached features and PPO prompts carry none: the key is then absent).

With DDP the counts of all processes add up over the slowest process's time. Several fits in
one run (the ensemble stage's phases 1 and 2) add up: counts and times are summed, each rate is
over the time of the batches that carried its unit. A resumed run measures the attempt that
finished it (the batches it trained, its wall time).

The keys exist after the stage has logged its final metrics, so Lightning's loggers (CSV, W&B
history) never see them; the pipeline adds them to an open W&B run's summary (strings are fine
there) and prints one line: ``cost: 12.3 s wall, peak RSS 1.2 GB, 850 sequences/s on cpu: ...``.
The sweep report (``python -m rcollapse.report``) prints them in its Cost section.
"""

from __future__ import annotations

import dataclasses
import platform
import re
import resource
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import lightning as L
import torch

GB = 1e9

_ACTIVE: list[RunCost] = []  # the RunCost of the stage running in this process (innermost last)


# ---- pure calculations ----------------------------------------------------------------------------
def maxrss_bytes(ru_maxrss: float, system: str | None = None) -> float:
    """``getrusage().ru_maxrss`` in bytes: Linux (and the BSDs) count kilobytes, macOS bytes."""
    system = platform.system() if system is None else system
    return float(ru_maxrss) if system == "Darwin" else float(ru_maxrss) * 1024.0


def vmhwm_bytes(status_text: str) -> float | None:
    """The peak resident set (``VmHWM``, kB) of a ``/proc/<pid>/status`` text, in bytes."""
    match = re.search(r"^VmHWM:\s*(\d+)\s*kB", status_text, flags=re.MULTILINE)
    return float(match.group(1)) * 1024.0 if match else None


def cpu_model_name(cpuinfo_text: str | None = None) -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (``model name``, or ARM's ``Hardware`` /
    ``Processor``), else ``platform.processor()`` or the machine type."""
    if cpuinfo_text is None:
        try:
            cpuinfo_text = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            cpuinfo_text = ""
    for field in ("model name", "Hardware", "Processor", "cpu model"):
        match = re.search(rf"^{field}\s*:\s*(.+)$", cpuinfo_text, flags=re.MULTILINE)
        if match and match.group(1).strip():
            return " ".join(match.group(1).split())
    return platform.processor() or platform.machine() or "unknown"


def describe_device(kind: str, name: str, processes: int = 1, threads: int | None = None) -> str:
    """``"cuda: NVIDIA H200 x1"``, ``"cpu: <model>, 8 threads"`` (``x2 processes`` with DDP)."""
    if kind == "cuda":
        return f"cuda: {name} x{processes}"
    text = f"{kind}: {name}"
    if threads is not None:
        text += f", {threads} thread{'s' if threads != 1 else ''}"
    return text + (f" x{processes} processes" if processes > 1 else "")


@dataclasses.dataclass(frozen=True)
class BatchCount:
    """What one training batch holds: sequences (None: not countable) and non-padding tokens
    (None: the batch carries no tokens)."""

    sequences: int | None
    tokens: int | None


def _rows(value) -> int | None:
    return int(value.shape[0]) if isinstance(value, torch.Tensor) and value.dim() > 0 else None


def count_batch(batch) -> BatchCount:
    """Sequences and non-padding tokens of one batch.

    A mapping with ``*input_ids`` keys (``input_ids``, or ``chosen_input_ids`` and
    ``rejected_input_ids``): their rows, and the ones of the matching ``*attention_mask`` (all
    ids where there is no mask). A mapping with ``features`` (cached backbone features): its rows,
    no tokens. A tensor, or a list/tuple whose first item is one: the rows. A list/tuple of other
    things (PPO's prompts): its length, no tokens. Anything else: nothing countable.
    """
    if isinstance(batch, Mapping):
        id_keys = [k for k in batch if isinstance(k, str) and k.endswith("input_ids")]
        if id_keys:
            sequences = tokens = 0
            for key in id_keys:
                ids = batch[key]
                if not isinstance(ids, torch.Tensor) or ids.dim() == 0:
                    return BatchCount(None, None)
                sequences += int(ids.shape[0])
                mask = batch.get(key[: -len("input_ids")] + "attention_mask")
                tokens += int(mask.sum()) if isinstance(mask, torch.Tensor) else int(ids.numel())
            return BatchCount(sequences, tokens)
        if "features" in batch:
            return BatchCount(_rows(batch["features"]), None)
        return BatchCount(None, None)
    if isinstance(batch, torch.Tensor):
        return BatchCount(_rows(batch), None)
    if isinstance(batch, Sequence) and not isinstance(batch, str | bytes):
        if batch and isinstance(batch[0], torch.Tensor):
            return BatchCount(_rows(batch[0]), None)
        return BatchCount(len(batch), None)
    return BatchCount(None, None)


@dataclasses.dataclass
class Throughput:
    """Training counts and the time they took: ``train_s`` over every batch, ``sequence_s`` over
    the batches whose sequences were counted, ``token_s`` over those that carried tokens."""

    batches: float = 0.0
    train_s: float = 0.0
    sequences: float = 0.0
    sequence_s: float = 0.0
    tokens: float = 0.0
    token_s: float = 0.0

    FIELDS = ("batches", "train_s", "sequences", "sequence_s", "tokens", "token_s")
    TIMES = ("train_s", "sequence_s", "token_s")

    def add(self, count: BatchCount, seconds: float) -> None:
        """One batch of ``count`` that took ``seconds``."""
        self.batches += 1
        self.train_s += seconds
        if count.sequences is not None:
            self.sequences += count.sequences
            self.sequence_s += seconds
        if count.tokens is not None:
            self.tokens += count.tokens
            self.token_s += seconds

    def merge(self, other: Throughput) -> None:
        """Another fit of the same run: everything adds up."""
        for name in self.FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_list(self) -> list[float]:
        return [float(getattr(self, name)) for name in self.FIELDS]

    @classmethod
    def across_ranks(cls, rows: Sequence[Sequence[float]]) -> Throughput:
        """The processes of one DDP fit (one ``as_list()`` each): counts add up, times are the
        slowest process's (they trained in lockstep)."""
        out = cls()
        for i, name in enumerate(cls.FIELDS):
            values = [float(row[i]) for row in rows]
            setattr(out, name, max(values, default=0.0) if name in cls.TIMES else sum(values))
        return out

    def metrics(self) -> dict[str, float]:
        """The ``cost/train_*`` keys ({} when no training batch ran)."""
        if self.batches == 0 or self.train_s <= 0:
            return {}
        out = {"cost/train_s": self.train_s, "cost/train_batches": self.batches,
               "cost/train_batches_per_s": self.batches / self.train_s}
        if self.sequence_s > 0:
            out["cost/train_sequences_per_s"] = self.sequences / self.sequence_s
        if self.token_s > 0:
            out["cost/train_tokens_per_s"] = self.tokens / self.token_s
        return out


def _number(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"


def cost_line(cost: Mapping) -> str:
    """``cost: 12.3 s wall, peak RSS 1.2 GB, 850 sequences/s on cpu: ...`` (what is there)."""
    parts = [f"{cost['cost/wall_s']:.1f} s wall"] if "cost/wall_s" in cost else []
    if "cost/peak_rss_gb" in cost:
        parts.append(f"peak RSS {_number(cost['cost/peak_rss_gb'])} GB")
    if "cost/peak_gpu_mem_gb" in cost:
        parts.append(f"peak GPU memory {_number(cost['cost/peak_gpu_mem_gb'])} GB")
    if "cost/train_sequences_per_s" in cost:
        parts.append(f"{_number(cost['cost/train_sequences_per_s'])} sequences/s")
    elif "cost/train_batches_per_s" in cost:
        parts.append(f"{_number(cost['cost/train_batches_per_s'])} batches/s")
    if "cost/train_tokens_per_s" in cost:
        parts.append(f"{_number(cost['cost/train_tokens_per_s'])} tokens/s")
    line = "cost: " + ", ".join(parts)
    return line + (f" on {cost['cost/device']}" if cost.get("cost/device") else "")


# ---- measuring ------------------------------------------------------------------------------------
def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark of this process (Linux ≥ 4.0); whether that worked."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def peak_rss_bytes(reset_worked: bool) -> float:
    """The process's peak RSS: ``VmHWM`` when the mark was reset at the start, else
    ``getrusage``'s peak of the whole process."""
    if reset_worked:
        try:
            found = vmhwm_bytes(Path("/proc/self/status").read_text())
        except OSError:
            found = None
        if found is not None:
            return found
    return maxrss_bytes(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def cpu_device() -> str:
    return describe_device("cpu", cpu_model_name(), threads=torch.get_num_threads())


def trainer_device(trainer: L.Trainer) -> str:
    """The device a trainer runs on, with the number of processes training together."""
    root = trainer.strategy.root_device
    processes = int(getattr(trainer, "world_size", 1) or 1)
    if root.type == "cuda":
        return describe_device("cuda", torch.cuda.get_device_name(root), processes)
    if root.type == "cpu":
        return describe_device("cpu", cpu_model_name(), processes, threads=torch.get_num_threads())
    return describe_device(root.type, str(root), processes)


class RunCost:
    """Measures one stage: ``with RunCost() as cost: ...``, then ``cost.metrics()``.

    While it is active, the :class:`ThroughputMeter` of every trainer reports its device and,
    when its fit ends, its counts to it (:func:`active`).
    """

    def __init__(self):
        self.throughput = Throughput()
        self.devices: list[str] = []
        self.wall_s: float | None = None
        self._start = None
        self._rss_reset = False

    def __enter__(self) -> RunCost:
        outer = active()
        if outer is None:  # a meter inside another one keeps the outer one's peaks (and shares them)
            self._rss_reset = _reset_peak_rss()
            if torch.cuda.is_available() and torch.cuda.is_initialized():  # a fresh process starts at 0
                for index in range(torch.cuda.device_count()):
                    torch.cuda.reset_peak_memory_stats(index)
        else:
            self._rss_reset = outer._rss_reset
        _ACTIVE.append(self)
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> bool:
        self.wall_s = time.perf_counter() - self._start
        if self in _ACTIVE:
            _ACTIVE.remove(self)
        return False

    def note_device(self, device: str) -> None:
        if device not in self.devices:
            self.devices.append(device)

    def add_training(self, throughput: Throughput) -> None:
        self.throughput.merge(throughput)

    def metrics(self) -> dict[str, float | str]:
        """The ``cost/*`` keys (measured now where the stage has not ended)."""
        wall = self.wall_s if self.wall_s is not None else time.perf_counter() - self._start
        out: dict[str, float | str] = {"cost/wall_s": float(wall),
                                       "cost/peak_rss_gb": peak_rss_bytes(self._rss_reset) / GB}
        if torch.cuda.is_available():
            peak = 0
            if torch.cuda.is_initialized():
                peak = max((torch.cuda.max_memory_allocated(i) for i in range(torch.cuda.device_count())), default=0)
            out["cost/peak_gpu_mem_gb"] = peak / GB
        out["cost/device"] = "; ".join(self.devices) or cpu_device()
        out.update(self.throughput.metrics())
        return dict(sorted(out.items()))


def active() -> RunCost | None:
    """The :class:`RunCost` of the stage running in this process, if any."""
    return _ACTIVE[-1] if _ACTIVE else None


class ThroughputMeter(L.Callback):
    """Counts the training sequences and non-padding tokens (:func:`count_batch`) of a trainer's
    fits and the time spent inside training batches, and hands them to the active
    :class:`RunCost` at the end of each fit (with DDP: summed over the processes)."""

    def __init__(self):
        self.fit = Throughput()
        self.total = Throughput()  # every fit of this trainer (rank 0's view after DDP's sum)
        self._started: float | None = None

    @staticmethod
    def _sync(pl_module) -> None:
        device = getattr(pl_module, "device", None)
        if isinstance(device, torch.device) and device.type == "cuda":
            torch.cuda.synchronize(device)

    def setup(self, trainer, pl_module, stage: str) -> None:
        meter = active()
        if meter is not None:
            try:
                meter.note_device(trainer_device(trainer))
            except Exception:  # a name is no reason to stop a run
                pass

    def on_train_start(self, trainer, pl_module) -> None:
        self.fit = Throughput()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._sync(pl_module)
        self._started = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._started is None:
            return
        self._sync(pl_module)
        seconds = time.perf_counter() - self._started
        self._started = None
        self.fit.add(count_batch(batch), seconds)

    def on_train_end(self, trainer, pl_module) -> None:
        fit = self.fit
        if trainer.world_size > 1:  # every process reaches the end of the fit: gather is safe
            local = torch.tensor(fit.as_list(), dtype=torch.float64, device=pl_module.device)
            rows = trainer.strategy.all_gather(local).reshape(-1, len(Throughput.FIELDS))
            fit = Throughput.across_ranks(rows.cpu().tolist())
        self.fit = Throughput()
        self.total.merge(fit)
        meter = active()
        if meter is not None:
            meter.add_training(fit)


__all__ = ["RunCost", "ThroughputMeter", "Throughput", "BatchCount", "count_batch", "cost_line", "maxrss_bytes",
           "vmhwm_bytes", "cpu_model_name", "describe_device", "active", "GB"]
