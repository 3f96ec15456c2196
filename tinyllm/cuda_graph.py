"""Whole-step CUDA graphs: record a training step's kernels once, then replay them with one launch.

A step of a small model queues a few hundred kernels, and Python takes longer to queue them than the
GPU takes to run them. `capture(step)` runs `step` a few times to warm up (these steps are real: they
train), then records one call into a CUDA graph (CuPy's stream capture); each later call of the
result replays the graph, with no Python in between:

    idx, targets = tinyllm.tensor(batch_ids, device="cuda"), tinyllm.tensor(batch_targets, device="cuda")
    def step():
        opt.zero_grad()
        with tinyllm.amp.autocast(tinyllm.bfloat16):
            _, loss = model(idx, targets)
        loss.backward()
        tinyllm.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss
    step = tinyllm.cuda_graph.capture(step, optimizers=[opt])   # opt = AdamW(..., capturable=True)
    for batch in batches:
        idx.data[...], targets.data[...] = batch                   # refill the inputs in place
        print(step().item())                                       # the loss Tensor the graph writes

What a graph needs from the step, as in PyTorch:
- static shapes and static buffers: the step reads its inputs from Tensors refilled in place, and
  returns the same output Tensors (written by every replay);
- no host reads inside (`.item()`, `float(t)`, a shape that depends on data): the host does not run
  during a replay. tinyllm's training step has none (clip_grad_norm_ keeps the norm on the device;
  ids on the GPU are not range-checked);
- state that changes from step to step kept on the device: AdamW(capturable=True) counts its steps
  there, and keeps its learning rates there too, which each replay first copies from the param
  groups (so `group["lr"] = schedule(step)` between replays works). Dropout's counter offsets are
  read from the device too (random.capturing_dropout), so each replay draws new masks: the ones the
  eager steps would have drawn. Other Python numbers inside the step are frozen at capture.

Memory: everything the step allocates during capture comes from a memory pool of the graph's own, so
no other array is ever handed a buffer that a replay writes into. Don't run the step eagerly between
replays: the gradients would then live in other buffers than the ones the graph writes.
"""
from . import random
from .backend.array import cupy as _cupy


class CapturedStep:
    """A captured step: calling it replays the graph and returns the step's output (the same objects
    every time, refreshed by the replay)."""

    def __init__(self, graph, stream, output, pool, optimizers, dropout):
        self.graph, self.stream, self.output, self.pool, self.optimizers = graph, stream, output, pool, optimizers
        self.dropout = dropout

    def __call__(self):
        cupy = _cupy()
        current = cupy.cuda.get_current_stream()
        for opt in self.optimizers:
            opt.write_learning_rates()
        self.dropout.before_replay()
        self.stream.wait_event(current.record())  # after the inputs and learning rates were written on the current stream
        self.graph.launch(stream=self.stream)
        current.wait_event(self.stream.record())  # the caller's next work sees the step's results
        for opt in self.optimizers:
            opt.count_replayed_step()
        return self.output


def capture(step, warmup=3, optimizers=()):
    """Warm `step` up (`warmup` real calls), capture one call into a CUDA graph, and return a
    CapturedStep that replays it. `optimizers` get their host-side step counts advanced per replay."""
    cupy = _cupy()
    stream = cupy.cuda.Stream(non_blocking=True)
    current = cupy.cuda.get_current_stream()
    stream.wait_event(current.record())
    with stream:  # first calls allocate optimizer state and library workspaces: do that outside the graph
        for _ in range(warmup):
            step()
    pool = cupy.cuda.MemoryPool()
    with random.capturing_dropout() as dropout, cupy.cuda.using_allocator(pool.malloc), stream:
        stream.begin_capture(mode=cupy.cuda.runtime.streamCaptureModeRelaxed)
        try:
            output = step()
        finally:
            graph = stream.end_capture()
    for opt in optimizers:  # capture recorded the step without running it: undo its host count
        opt.count_replayed_step(-1)
    current.wait_event(stream.record())
    return CapturedStep(graph, stream, output, pool, list(optimizers), dropout)
