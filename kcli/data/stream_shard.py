"""A streamed table split among the workers of a cluster: which rows each worker reads. TensorFlow-free.

The rule (every worker computes it alike from the row counts of the training files, in name order):
N rows, global batch B, W workers, so a worker's batch is b = B / W. The N // B full global batches give every
worker the same F = N // B full batches; the R = N % B rows of the last, partial global batch are dealt as
evenly as they go (the first R % W workers take one row more). Worker k reads one contiguous run of the table
(files in name order): whole files where the cuts fall between files, a window of a file's rows where a cut falls
inside one. Every worker has the same number of batches (MultiWorkerMirroredStrategy hangs on a worker with
fewer): ceil(N / B), as one process, when R >= W, and every row is visited exactly once per epoch. When the
partial global batch has fewer rows than workers (0 < R < W; with 2 workers: N % B == 1), some worker would have
no row for it, and TensorFlow 2.21 crashes on a worker's empty batch (SIGSEGV, seen), so that batch is left out of
the epoch (as `drop_remainder`): the R workers holding one of its rows drop their last, one-row batch, which is the
row their part's order puts last, so another row each epoch when shuffling. N // B batches then.

The order within a worker's part depends on (seed, epoch, worker): its pieces (files or windows of a file) in a
permutation drawn from `default_rng([seed, epoch, k])`, then every window of rows permuted as one process does.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Shard:
    """This process's place in the cluster (a rank among the training workers, chief first)."""

    index: int
    workers: int
    replicas: int = 0   # replicas in sync over the cluster (0: one per worker)

    def batch(self, global_batch: int) -> int:
        """This worker's part of every global batch (tf.distribute's split of an in-memory batch, too)."""
        return global_batch // self.workers


@dataclass(frozen=True)
class Piece:
    """Rows start..stop (0-based, stop excluded) of training file `file` (its index in name order)."""

    file: int
    start: int
    stop: int


@dataclass(frozen=True)
class Part:
    """What one worker reads each epoch, its batches, and whether it drops its last (one-row) batch."""

    pieces: tuple[Piece, ...]
    rows: int
    batches: int
    drop_last: bool


def shares(rows: int, batch_size: int, workers: int) -> list[int]:
    """The rows of each worker (see the module's rule)."""
    local = Shard(0, workers).batch(batch_size)
    full, rest = divmod(rows, batch_size)
    return [full * local + rest // workers + (1 if k < rest % workers else 0) for k in range(workers)]


def part(file_rows: list[int], batch_size: int, shard: Shard) -> Part:
    """Worker `shard.index`'s contiguous run of the table's rows."""
    counts = shares(sum(file_rows), batch_size, shard.workers)
    begin = sum(counts[:shard.index])
    end = begin + counts[shard.index]
    pieces, offset = [], 0
    for i, n in enumerate(file_rows):
        start, stop = max(begin, offset), min(end, offset + n)
        if start < stop:
            pieces.append(Piece(i, start - offset, stop - offset))
        offset += n
    full, rest = divmod(sum(file_rows), batch_size)
    drop = 0 < rest < shard.workers   # the partial global batch cannot give every worker a row: left out
    return Part(tuple(pieces), end - begin, full + (1 if rest and not drop else 0),
                drop_last=drop and counts[shard.index] > full * shard.batch(batch_size))
