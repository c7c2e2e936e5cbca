"""Render HDFS block sessions (sequences of event ids) back into raw HDFS log lines.

The shared data holds HDFS_v1 block sessions only as event-id sequences (Xu et al., SOSP 2009, labelled by
the Loghub team, https://github.com/logpai/loghub; Zhu et al., ISSRE 2023). A log anomaly detector reads raw
lines, so the detection benchmark and the README's demo sample need the lines back. Each event id
(``HDFS_templates.csv``, E1..E30) is written the way the real HDFS 0.18 daemons wrote it:
``<Date> <Time> <Pid> <Level> <Component>: <Content>``, with the level, component and message layout of the
real log (``loghub-2k/HDFS`` for the events it contains; the Hadoop source and public extracts of the full
HDFS_v1 log for the rest) and realistic parameters: 64-bit signed block ids, 10.250/10.251 datanodes on port
50010, ephemeral client ports, block sizes, job output paths, growing thread ids, exception texts.

Each session gets its own block id and keeps its event order; sessions start at random times and interleave
(the entity is the block id, so interleaving is what a real stream looks like). Events of one session are
seconds apart and a session lasts at most ``MAX_SESSION_SECONDS``, so a 5-minute session gap never splits a
block. Everything is drawn from ``random.Random(seed)``: same sessions and seed, same bytes.

CLI: ``python -m benchmarks.hdfs_render --normal 970 --seed 7 --out hdfs.log --labels labels.csv``.
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from benchmarks.loghub import data_dir

Session = tuple[Sequence[int], int]  # (event ids, label: 1 = anomalous)

HDFS_FORMAT = "<Date> <Time> <Pid> <Level> <Component>: <Content>"
DEFAULT_START = datetime(2008, 11, 9, 20, 35, 18)  # the first line of HDFS_v1
MAX_SESSION_SECONDS = 240.0
MEAN_INTERARRIVAL_SECONDS = 0.25  # HDFS_v1: ~575k blocks in ~39 hours, ~4 blocks/s
FULL_BLOCK = 67108864

# event id -> (level, component, thread kind, message). Thread kinds pick the Pid column the way the real log
# shows it: NameNode handler threads 19-35, the block scanner 13, datanode daemon threads 18-19, and per-transfer
# worker threads (DataXceiver, PacketResponder, BlockReceiver, DataTransfer) whose ids grow over the run.
EVENTS: dict[int, tuple[str, str, str, str]] = {
    1: ("WARN", "dfs.DataBlockScanner", "scanner", "Adding an already existing block {blk}"),
    2: ("INFO", "dfs.DataBlockScanner", "scanner", "Verification succeeded for {blk}"),
    3: ("INFO", "dfs.DataNode$DataXceiver", "worker", "{dn}:50010 Served block {blk} to /{peer}"),
    4: ("WARN", "dfs.DataNode$DataXceiver", "worker", "{dn}:50010:Got exception while serving {blk} to /{peer}:"),
    5: ("INFO", "dfs.DataNode$DataXceiver", "worker", "Receiving block {blk} src: /{src}:{port} dest: /{dn}:50010"),
    6: ("INFO", "dfs.DataNode$DataXceiver", "worker",
        "Received block {blk} src: /{src}:{port} dest: /{dn}:50010 of size {size}"),
    7: ("INFO", "dfs.DataNode$DataXceiver", "worker", "writeBlock {blk} received exception {exc}"),
    8: ("INFO", "dfs.DataNode$PacketResponder", "worker", "PacketResponder {responder} for block {blk} Interrupted."),
    9: ("INFO", "dfs.DataNode$PacketResponder", "worker", "Received block {blk} of size {size} from /{src}"),
    10: ("INFO", "dfs.DataNode$PacketResponder", "worker", "PacketResponder {blk} {responder} Exception {exc}"),
    11: ("INFO", "dfs.DataNode$PacketResponder", "worker", "PacketResponder {responder} for block {blk} terminating"),
    12: ("INFO", "dfs.DataNode$BlockReceiver", "worker",
         "{dn}:50010:Exception writing block {blk} to mirror {peer}:50010"),
    13: ("INFO", "dfs.DataNode$BlockReceiver", "worker", "Receiving empty packet for block {blk}"),
    14: ("INFO", "dfs.DataNode$BlockReceiver", "worker", "Exception in receiveBlock for block {blk} {exc}"),
    15: ("INFO", "dfs.DataNode$BlockReceiver", "worker",
         "Changing block file offset of block {blk} from {off_from} to {off_to} meta file offset to {meta}"),
    16: ("INFO", "dfs.DataNode$DataTransfer", "worker", "{dn}:50010:Transmitted block {blk} to /{peer}:50010"),
    17: ("WARN", "dfs.DataNode$DataTransfer", "worker",
         "{dn}:50010:Failed to transfer {blk} to {peer}:50010 got {exc}"),
    18: ("INFO", "dfs.DataNode", "daemon", "{dn}:50010 Starting thread to transfer block {blk} to {peer}:50010"),
    19: ("INFO", "dfs.FSDataset", "daemon", "Reopen Block {blk}"),
    20: ("WARN", "dfs.FSDataset", "daemon",
         "Unexpected error trying to delete block {blk}. BlockInfo not found in volumeMap."),
    21: ("INFO", "dfs.FSDataset", "daemon",
         "Deleting block {blk} file /mnt/hadoop/dfs/data/current/subdir{subdir}/{blk}"),
    22: ("INFO", "dfs.FSNamesystem", "namenode", "BLOCK* NameSystem.allocateBlock: {path}. {blk}"),
    23: ("INFO", "dfs.FSNamesystem", "namenode",
         "BLOCK* NameSystem.delete: {blk} is added to invalidSet of {dn}:50010"),
    24: ("INFO", "dfs.FSNamesystem", "namenode",
         "BLOCK* Removing block {blk} from neededReplications as it does not belong to any file."),
    25: ("INFO", "dfs.FSNamesystem", "namenode",
         "BLOCK* ask {dn}:50010 to replicate {blk} to datanode(s) {peer}:50010"),
    26: ("INFO", "dfs.FSNamesystem", "namenode",
         "BLOCK* NameSystem.addStoredBlock: blockMap updated: {dn}:50010 is added to {blk} size {size}"),
    27: ("WARN", "dfs.FSNamesystem", "namenode",
         "BLOCK* NameSystem.addStoredBlock: Redundant addStoredBlock request received for {blk} on {dn}:50010 "
         "size {size}"),
    # The real HDFS_v1 line says "doesn't"; HDFS_templates.csv paraphrases it as "does not".
    28: ("INFO", "dfs.FSNamesystem", "namenode",
         "BLOCK* NameSystem.addStoredBlock: addStoredBlock request received for {blk} on {dn}:50010 size {size} "
         "But it doesn't belong to any file."),
    29: ("WARN", "dfs.PendingReplicationBlocks$PendingReplicationMonitor", "namenode",
         "PendingReplicationMonitor timed out block {blk}"),
    # The real line lists every block the namenode asks to delete; one block here, so entities stay exact.
    30: ("INFO", "dfs.FSNamesystem", "namenode", "BLOCK* ask {dn}:50010 to delete  {blk}"),
}

EXCEPTIONS: tuple[str, ...] = (
    "java.io.IOException: Connection reset by peer",
    "java.io.IOException: Could not read from stream",
    "java.io.EOFException",
    "java.io.IOException: Broken pipe",
    "java.net.SocketTimeoutException: 63000 millis timeout while waiting for channel to be ready for read. "
    "ch : java.nio.channels.SocketChannel[connected local=/{dn}:50010 remote=/{peer}:{port}]",
    "java.io.InterruptedIOException: Interruped while waiting for IO on channel "
    "java.nio.channels.SocketChannel[connected local=/{dn}:{port} remote=/{peer}:50010]. 59997 millis timeout left.",
)
# Map-reduce jobs whose outputs the HDFS_v1 blocks belong to (paths as in loghub-2k/HDFS).
JOB_DIRS: tuple[tuple[str, str], ...] = (("rand", "m"), ("randtxt", "m"), ("sortrand", "r"))
JOB_SECONDS = 1800.0


@dataclass(frozen=True, slots=True)
class Rendered:
    """The rendered stream: lines in time order, and each input session's block id and label (input order)."""

    lines: list[str]
    block_ids: list[str]
    labels: list[int]

    def __iter__(self) -> Iterator[str]:
        return iter(self.lines)


def _datanodes(rng: random.Random, n: int = 203) -> list[str]:
    nodes: set[str] = set()
    while len(nodes) < n:
        nodes.add(f"10.{rng.choice((250, 251))}.{rng.randint(1, 254)}.{rng.randint(1, 254)}")
    return sorted(nodes)


def _block_id(rng: random.Random, taken: set[str]) -> str:
    while True:
        blk = f"blk_{rng.randint(-(2**63), 2**63 - 1)}"
        if blk not in taken:
            taken.add(blk)
            return blk


def _job_path(rng: random.Random, start: datetime, offset: float) -> str:
    job = int(offset // JOB_SECONDS)
    name, kind = JOB_DIRS[job % len(JOB_DIRS)]
    suffix = str(job // len(JOB_DIRS) + 1) if job >= len(JOB_DIRS) else ""
    task = rng.randint(0, 2000 if kind == "m" else 300)
    return (f"/user/root/{name}{suffix}/_temporary/_task_{start:%Y%m%d%H%M}_{job + 1:04d}_{kind}_{task:06d}_0/"
            f"part-{task:05d}")


def _pid(kind: str, rng: random.Random, offset: float) -> int:
    if kind == "namenode":
        return rng.randint(19, 35)
    if kind == "scanner":
        return 13
    if kind == "daemon":
        return rng.randint(18, 19)
    return 140 + int(offset / 5) + rng.randint(0, 400)


@dataclass(frozen=True, slots=True)
class _Block:
    """What stays fixed across one block's events: its id, write pipeline, size and file."""

    blk: str
    pipeline: list[str]
    size: int
    path: str


def _message(event: int, k: int, block: _Block, nodes: list[str], rng: random.Random) -> str:
    """The message of the k-th occurrence (0-based) of ``event`` in a session; k walks the 3-node pipeline."""
    pipeline = block.pipeline
    slot = k % len(pipeline)
    params = {
        "blk": block.blk,
        "dn": pipeline[slot],
        "src": pipeline[slot - 1] if slot else pipeline[0],
        "port": str(rng.randint(32768, 60999)),
        "peer": rng.choice(nodes),
        "size": str(block.size),
        "responder": str(len(pipeline) - 1 - slot),
        "path": block.path,
        "subdir": str(rng.randint(0, 63)),
    }
    if event in (7, 10, 14, 17):
        params["exc"] = rng.choice(EXCEPTIONS).format(**params)
    if event == 15:
        to = rng.randrange(0, block.size + 1, 512)
        params.update(off_from=str(to + rng.randrange(512, 65536, 512)), off_to=str(to), meta=str(7 + to // 512 * 4))
    return EVENTS[event][3].format(**params)


def _gaps(n: int, rng: random.Random) -> list[float]:
    gaps = [0.0 if rng.random() < 0.55 else min(1.0 + rng.expovariate(1 / 4.0), 60.0) for _ in range(n)]
    total = sum(gaps)
    if total > MAX_SESSION_SECONDS:
        gaps = [g * MAX_SESSION_SECONDS / total for g in gaps]
    return gaps


def render(sessions: Sequence[Session], seed: int, start: datetime = DEFAULT_START) -> Rendered:
    """Render ``sessions`` as interleaved raw HDFS lines; deterministic for a given seed."""
    rng = random.Random(seed)
    nodes = _datanodes(rng)
    taken: set[str] = set()
    events: list[tuple[float, int, int, str]] = []
    block_ids: list[str] = []
    labels: list[int] = []
    clock = 0.0
    for index, (sequence, label) in enumerate(sessions):
        clock += rng.expovariate(1 / MEAN_INTERARRIVAL_SECONDS)
        size = FULL_BLOCK if rng.random() < 0.94 else rng.randint(1_000_000, FULL_BLOCK - 1)
        block = _Block(_block_id(rng, taken), rng.sample(nodes, 3), size, _job_path(rng, start, clock))
        block_ids.append(block.blk)
        labels.append(int(label))
        seen: dict[int, int] = {}
        t = clock
        for position, (event, gap) in enumerate(zip(sequence, _gaps(len(sequence), rng), strict=True)):
            if event not in EVENTS:
                raise ValueError(f"session {index}: unknown HDFS event id {event!r} (expected 1..30)")
            t += gap
            k = seen.get(event, 0)
            seen[event] = k + 1
            level, component, kind, _ = EVENTS[event]
            stamp = start + timedelta(seconds=t)
            head = f"{stamp:%y%m%d %H%M%S} {_pid(kind, rng, t)} {level} {component}: "
            events.append((t, index, position, head + _message(event, k, block, nodes, rng)))
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    return Rendered([e[3] for e in events], block_ids, labels)


def write_log(rendered: Rendered, path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        for line in rendered.lines:
            fh.write(line + "\n")


def write_labels(rendered: Rendered, path: Path) -> None:
    """Ground truth, one row per block: ``block_id,label`` (1 = anomalous)."""
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(("block_id", "label"))
        writer.writerows(zip(rendered.block_ids, rendered.labels, strict=True))


def read_labels(path: Path) -> dict[str, int]:
    with path.open(newline="", encoding="utf-8") as fh:
        return {row["block_id"]: int(row["label"]) for row in csv.DictReader(fh)}


# --- session sources -------------------------------------------------------------------------------------------

def sessions_dir() -> Path:
    return data_dir() / "hdfs-sessions"


def _read_sequences(path: Path) -> list[tuple[int, ...]]:
    with path.open(encoding="utf-8") as fh:
        return [tuple(int(x) for x in line.split()) for line in fh if line.strip()]


def load_source(source: str) -> tuple[list[tuple[int, ...]], list[tuple[int, ...]]]:
    """(normal, anomalous) sequences: ``train`` = hdfs_train + hdfs_test_abnormal, ``test`` = robust_log_train."""
    root = sessions_dir()
    if source == "train":
        return _read_sequences(root / "hdfs_train"), _read_sequences(root / "hdfs_test_abnormal")
    if source == "test":
        normal: list[tuple[int, ...]] = []
        anomalous: list[tuple[int, ...]] = []
        with (root / "robust_log_train.csv").open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                seq = tuple(int(x) for x in row["Sequence"].split())
                (anomalous if row["label"].strip() == "1" else normal).append(seq)
        return normal, anomalous
    raise ValueError(f"unknown session source {source!r}; expected 'train' or 'test'")


def anomalous_count(n_normal: int, rate: float) -> int:
    """How many anomalous sessions make them ``rate`` of the whole stream."""
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"anomalous rate must be in [0, 1), got {rate}")
    return round(n_normal * rate / (1.0 - rate))


def mix(normal: Sequence[tuple[int, ...]], anomalous: Sequence[tuple[int, ...]], n_normal: int, rate: float,
        rng: random.Random) -> list[Session]:
    """Draw ``n_normal`` normal sessions plus anomalous ones at ``rate`` of the total, shuffled (no repeats)."""
    n_anomalous = anomalous_count(n_normal, rate)
    if n_normal > len(normal) or n_anomalous > len(anomalous):
        raise ValueError(f"asked for {n_normal} normal and {n_anomalous} anomalous sessions; the source has "
                         f"{len(normal)} and {len(anomalous)}")
    drawn: list[Session] = [(s, 0) for s in rng.sample(list(normal), n_normal)]
    drawn += [(s, 1) for s in rng.sample(list(anomalous), n_anomalous)]
    rng.shuffle(drawn)
    return drawn


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hdfs_render", description=__doc__.split("\n")[0])
    parser.add_argument("--normal", type=int, default=970, help="normal sessions to draw (default 970)")
    parser.add_argument("--anomalous-rate", type=float, default=0.03, help="share of anomalous sessions (0.03)")
    parser.add_argument("--source", choices=("train", "test"), default="train",
                        help="train: hdfs_train + hdfs_test_abnormal; test: robust_log_train.csv")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--start", type=datetime.fromisoformat, default=DEFAULT_START,
                        help="time of the first session, ISO 8601 (default 2008-11-09T20:35:18)")
    parser.add_argument("--out", type=Path, required=True, help="log file to write")
    parser.add_argument("--labels", type=Path, help="ground-truth CSV to write (block_id,label)")
    args = parser.parse_args(argv)
    try:
        normal, anomalous = load_source(args.source)
        sessions = mix(normal, anomalous, args.normal, args.anomalous_rate, random.Random(args.seed))
    except (OSError, ValueError) as exc:
        print(f"hdfs_render: {exc}", file=sys.stderr)
        return 2
    rendered = render(sessions, seed=args.seed, start=args.start)
    write_log(rendered, args.out)
    if args.labels:
        write_labels(rendered, args.labels)
    print(f"{len(rendered.lines)} lines, {len(sessions)} blocks ({sum(rendered.labels)} anomalous) -> {args.out}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
