"""The accelerator and strategy a run asks Lightning for, checked before any image is decoded: a misspelt name
or a GPU the machine lacks was Lightning's own error once the data was cached and the run's files written."""

from __future__ import annotations

import os
from collections.abc import Mapping

from ..errors import invalid

GPU_ALIASES = ("gpu",)  # Lightning's word for whichever GPU the machine has (cuda, mps)


def check_engine(accelerator: str, strategy: str, precision: str = "auto") -> None:
    """An `invalid` error naming the setting when Lightning's registry does not know the accelerator, when the
    strategy is not one imgclf trains with (`SUPPORTED_STRATEGIES`), when the accelerator named is not on this
    machine, or when fp16 mixed precision would train on a CPU."""
    from lightning.pytorch.accelerators import AcceleratorRegistry
    from lightning.pytorch.strategies import StrategyRegistry

    known = sorted(AcceleratorRegistry.available_accelerators())
    usable = [name for name in known if AcceleratorRegistry[name]["accelerator"].is_available()]
    if accelerator not in ("auto", *GPU_ALIASES, *known):
        raise invalid("accelerator", accelerator, ("auto", *GPU_ALIASES, *known))
    gpus = [name for name in usable if name in ("cuda", "mps")]
    if (accelerator in GPU_ALIASES and not gpus) or (accelerator in known and accelerator not in usable):
        raise invalid("accelerator", accelerator, f"one this machine has: auto or {', '.join(usable)}")
    name = strategy.lower()  # Lightning reads it lower-cased
    if name.startswith(_LAUNCHED_INSIDE_FIT):  # at any device count: one process forked by one hung for ever
        raise invalid("strategy", strategy, "ddp (or auto): imgclf starts its processes before training, as "
                      "torchrun does", note="a strategy that starts them inside training would train and validate "
                      "every process on the first one's share of the data", hint="Pass --strategy ddp")
    if name not in SUPPORTED_STRATEGIES:
        # Lightning's others (fsdp, deepspeed, xla, single_tpu) failed inside training with an internal error
        known = name in StrategyRegistry.available_strategies()
        raise invalid("strategy", strategy, SUPPORTED_STRATEGIES,
                      note="a Lightning strategy imgclf does not train with" if known else None)
    if precision == "16-mixed" and (accelerator == "cpu" or (accelerator == "auto" and not gpus)):
        # Lightning trains bf16-mixed instead, with a warning of its own, and the card said 16-mixed
        raise invalid("precision", precision, "auto, 32 or bf16-mixed when training on a CPU",
                      note="fp16 mixed precision trains on a GPU only")


# what tells each process of a multi-node launch which node it is: a scheduler, torchrun, or the variables Lightning
# reads on every node (MASTER_ADDR, NODE_RANK)
_CLUSTER_VARIABLES = ("SLURM_NTASKS", "TORCHELASTIC_RUN_ID", "OMPI_COMM_WORLD_SIZE", "LSB_JOBID", "NODE_RANK",
                      "GROUP_RANK")


# Lightning strategies that start the other processes inside fit(): the loaders (and their rank's share of each
# split), built before it with rank 0's view, were copied to every process, and the callbacks that record the run
# ran in the children, so a run trained and validated on half the data and its card said 0 epochs
_LAUNCHED_INSIDE_FIT = ("ddp_spawn", "ddp_fork", "ddp_notebook")
# what imgclf trains with: one process, or one per device started before training (torchrun's way)
SUPPORTED_STRATEGIES = ("auto", "ddp", "ddp_find_unused_parameters_false", "ddp_find_unused_parameters_true")


def interactive() -> bool:
    """A notebook or `python -i`, as Lightning tells one (where it trains several devices by forking)."""
    import sys

    return hasattr(sys, "ps1") or bool(sys.flags.interactive)


def several_processes(devices: str, num_nodes: int, accelerator: str = "auto") -> bool:
    """Whether Lightning will train in more than one process: "auto" devices are every GPU of the machine (on a
    CPU, one process)."""
    if num_nodes > 1:
        return True
    if devices == "auto":
        import torch

        return accelerator != "cpu" and torch.cuda.is_available() and torch.cuda.device_count() > 1
    return devices != "1"


def process_count(devices: str, num_nodes: int, accelerator: str = "auto") -> int:
    """How many processes Lightning will train in: "auto" devices are every GPU of the machine (on a CPU, one)."""
    if devices != "auto":
        return int(devices) * num_nodes
    import torch

    gpus = torch.cuda.device_count() if accelerator != "cpu" and torch.cuda.is_available() else 0
    return max(1, gpus) * num_nodes


def check_launch(devices: str, num_nodes: int, environ: Mapping[str, str] = os.environ,
                 accelerator: str = "auto") -> None:
    """Refuse a launch whose processes would not form the data-parallel group asked for: torchrun (or another
    launcher) starting N processes for a run of other devices x nodes trained N whole runs into one folder, each
    alone; several nodes without anything saying which node this is waited for the others for ever."""
    if several_processes(devices, num_nodes, accelerator) and interactive() and "WORLD_SIZE" not in environ:
        # Lightning picks ddp_fork itself in an interactive session, where plain ddp is refused: the same failure
        raise invalid("devices", devices, "1 in an interactive session (a notebook, python -i): training on several "
                      "devices starts its processes as a script does", also={"num_nodes": num_nodes},
                      note="started from here, each process would train and validate on the first one's share of "
                           "the data", hint="Run it as a command: imgclf train ... --devices N --strategy ddp")
    asked = int(devices) * num_nodes if devices != "auto" else None
    started = environ.get("WORLD_SIZE")
    if asked is not None and started is not None and started.isdigit() and int(started) != asked:
        raise invalid("devices", devices, f"{int(started)} devices in all (devices x num_nodes), as many as the "
                      f"launcher started processes", also={"num_nodes": num_nodes},
                      note=f"WORLD_SIZE={started}: each process would train the whole run alone, into the same "
                           "folder", hint=f"Give --devices {int(started) // num_nodes} (and --strategy ddp)")
    if num_nodes > 1 and not any(name in environ for name in _CLUSTER_VARIABLES):
        raise invalid("num_nodes", num_nodes, "1 outside a multi-node launch",
                      note="no scheduler or launcher says which node this is (SLURM, torchrun --nnodes, or "
                           "MASTER_ADDR and NODE_RANK on every node): the processes would wait for the other nodes "
                           "for ever", hint="Launch through srun or torchrun --nnodes N, or set MASTER_ADDR, "
                                            "MASTER_PORT and NODE_RANK on each node")
