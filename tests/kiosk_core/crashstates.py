"""Power cuts, modelled: the store's file operations recorded, crash states made from them, and
what recovery makes of each state checked.

A SIGKILL keeps the kernel's page cache, so it never loses a write that was not yet fsync'd; a
power cut does. In the style of ALICE (OSDI '14) and CrashMonkey:

1. `RecordingDisk` is the store's `DiskIO` seam: it performs each operation on a real folder and
   records it (creat, mkdir, write, truncate, rename, unlink, fsync, fsync of a folder), with
   marks from the workload in between ("event 7 confirmed", "the centre acknowledged 5", ...).
2. At every crash point (after each operation) a model says which operations a power cut may
   have kept: `posix` guarantees only what was fsync'd (a file's data after an fsync of the file,
   a name in a folder after an fsync of the folder), and lets the rest be dropped, reordered,
   torn at 512 / 4096-byte or random offsets, zero-filled or holed; `ext4` is data=ordered ext4:
   folder operations persist in order and every fsync commits the ones before it, a file's data
   persists as a prefix in order (a write may be torn, never zero-filled), and a rename of a file
   carries the data written to it before.
3. Each state is built in a fresh folder and opened with the log's own recovery; `check_state`
   then asks: every confirmed event there once and unchanged, no invented event, seqs strictly
   increasing, the chain whole or its break reported, the cursor not past the log nor ahead of
   the centre nor behind what was confirmed, a second open clean (a repair is reported once), and
   an event appended after recovery still there after a clean reopen.

tests/kiosk_core/test_kiosk_powercut.py runs a quick sample in `make test`; bench/powercut.py
runs every crash point of several workloads and prints states tried and failures by kind.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import tempfile
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kiosk.store import DiskIO, EventLog, StoreConfig, verify_log
from sync.events import Event

# --------------------------------------------------------------------------- recording


@dataclass(frozen=True)
class Op:
    """One file-system operation as the disk saw it, or a mark of the workload (kind "mark")."""

    kind: str  # creat | mkdir | write | trunc | rename | unlink | fsync | fsyncdir | mark
    ino: int = 0  # the file (write, trunc, fsync, creat, rename, unlink) or folder (fsyncdir)
    parent: int = 0  # the folder of creat / mkdir / unlink; a rename's source folder
    name: str = ""
    parent2: int = 0  # a rename's target folder
    name2: str = ""
    offset: int = 0
    data: bytes = b""
    size: int = 0
    label: str = ""
    value: Any = None

    @property
    def is_dir_op(self) -> bool:
        return self.kind in ("creat", "mkdir", "rename", "unlink")

    @property
    def is_data_op(self) -> bool:
        return self.kind in ("write", "trunc")

    def describe(self) -> str:
        if self.kind == "mark":
            return f"mark {self.label} {self.value!r}"[:80]
        if self.kind == "write":
            return f"write ino {self.ino} @{self.offset} {len(self.data)} bytes"
        if self.kind == "rename":
            return f"rename {self.name} -> {self.name2} (ino {self.ino})"
        if self.kind in ("creat", "mkdir", "unlink"):
            return f"{self.kind} {self.name} (ino {self.ino} in {self.parent})"
        return f"{self.kind} ino {self.ino}" + (f" to {self.size}" if self.kind == "trunc" else "")


class Tree:
    """A file system image: folders (inode -> name -> inode) and file contents (inode -> bytes).
    Inode 1 is the root, the folder the recording started in."""

    ROOT = 1

    def __init__(self) -> None:
        self.dirs: dict[int, dict[str, int]] = {self.ROOT: {}}
        self.files: dict[int, bytearray] = {}

    def copy(self) -> Tree:
        other = Tree()
        other.dirs = {ino: dict(entries) for ino, entries in self.dirs.items()}
        other.files = {ino: bytearray(data) for ino, data in self.files.items()}
        return other

    @classmethod
    def scan(cls, root: Path, next_ino: Callable[[], int]) -> Tree:
        tree = cls()

        def walk(folder: Path, ino: int) -> None:
            for child in sorted(folder.iterdir()):
                child_ino = next_ino()
                tree.dirs[ino][child.name] = child_ino
                if child.is_dir():
                    tree.dirs[child_ino] = {}
                    walk(child, child_ino)
                else:
                    tree.files[child_ino] = bytearray(child.read_bytes())

        walk(root, cls.ROOT)
        return tree

    def lookup(self, parts: tuple[str, ...]) -> int | None:
        ino = self.ROOT
        for part in parts:
            entries = self.dirs.get(ino)
            if entries is None or part not in entries:
                return None
            ino = entries[part]
        return ino

    def apply(self, op: Op, variant: tuple[Any, ...] = ("full",)) -> None:
        kind = op.kind
        if kind == "creat":
            self.files.setdefault(op.ino, bytearray())
            self.dirs.setdefault(op.parent, {})[op.name] = op.ino
        elif kind == "mkdir":
            self.dirs.setdefault(op.ino, {})
            self.dirs.setdefault(op.parent, {})[op.name] = op.ino
        elif kind == "unlink":
            entries = self.dirs.get(op.parent, {})
            if entries.get(op.name) == op.ino:
                del entries[op.name]
        elif kind == "rename":
            self.dirs.setdefault(op.parent2, {})[op.name2] = op.ino
            if variant[0] != "link_only":
                entries = self.dirs.get(op.parent, {})
                if (op.parent, op.name) != (op.parent2, op.name2) and entries.get(
                    op.name
                ) == op.ino:
                    del entries[op.name]
        elif kind == "write":
            data = op.data
            if variant[0] == "torn":
                data = data[: variant[1]]
            elif variant[0] == "zero":
                data = bytes(len(data))
            elif variant[0] == "hole":
                start, end = variant[1], variant[2]
                data = data[:start] + bytes(end - start) + data[end:]
            content = self.files.setdefault(op.ino, bytearray())
            if op.offset > len(content):
                content.extend(bytes(op.offset - len(content)))
            content[op.offset : op.offset + len(data)] = data
        elif kind == "trunc":
            content = self.files.setdefault(op.ino, bytearray())
            if op.size < len(content):
                del content[op.size :]
            else:
                content.extend(bytes(op.size - len(content)))

    def reachable(self) -> Iterator[tuple[tuple[str, ...], int, bool]]:
        """(path parts, inode, is folder) of everything reachable from the root."""
        stack: list[tuple[tuple[str, ...], int]] = [((), self.ROOT)]
        seen: set[int] = set()
        while stack:
            parts, ino = stack.pop()
            if ino in seen:
                continue
            seen.add(ino)
            for name, child in sorted(self.dirs.get(ino, {}).items()):
                if child in self.dirs:
                    yield (*parts, name), child, True
                    stack.append(((*parts, name), child))
                else:
                    yield (*parts, name), child, False

    def digest(self) -> str:
        h = hashlib.sha256()
        for parts, ino, is_dir in sorted(self.reachable()):
            h.update("/".join(parts).encode() + (b"/" if is_dir else b"="))
            if not is_dir:
                h.update(hashlib.sha256(self.files.get(ino, b"")).digest())
        return h.hexdigest()

    def materialize(self, target: Path) -> None:
        target.mkdir(parents=True, exist_ok=True)
        for parts, ino, is_dir in sorted(self.reachable(), key=lambda r: len(r[0])):
            path = target.joinpath(*parts)
            if is_dir:
                path.mkdir(exist_ok=True)
            else:
                path.write_bytes(bytes(self.files.get(ino, b"")))


class RecordingDisk(DiskIO):
    """The store's disk, recording: every operation is done on the real folder under `root` and
    kept, in the order the disk received it, in `ops`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self._inode_counter = 1
        self.initial = Tree.scan(self.root, self._new_ino)
        self.live = self.initial.copy()  # every operation applied: what the page cache holds
        self.ops: list[Op] = []
        self._lock = threading.RLock()
        self._fds: dict[int, tuple[int, bool]] = {}  # fd -> (inode, opened for appending)
        self._positions: dict[int, int] = {}

    def _new_ino(self) -> int:
        self._inode_counter += 1
        return self._inode_counter

    def _parts(self, path: Path) -> tuple[str, ...]:
        resolved = Path(os.path.abspath(path))
        try:
            return resolved.relative_to(self.root).parts
        except ValueError:
            raise AssertionError(f"the store wrote outside the recorded folder: {path}") from None

    def _record(self, op: Op) -> None:
        self.ops.append(op)
        self.live.apply(op)

    def _parent_and_name(self, path: Path) -> tuple[int, str]:
        parts = self._parts(path)
        parent = self.live.lookup(parts[:-1])
        assert parent is not None and parent in self.live.dirs, f"no folder for {path}"
        return parent, parts[-1]

    def mark(self, label: str, value: Any = None) -> None:
        with self._lock:
            self.ops.append(Op("mark", label=label, value=value))

    def _open(self, path: Path, fd: int, *, append: bool, truncate: bool) -> int:
        parent, name = self._parent_and_name(path)
        ino = self.live.dirs[parent].get(name)
        if ino is None:
            ino = self._new_ino()
            self._record(Op("creat", ino=ino, parent=parent, name=name))
        elif truncate and self.live.files.get(ino):
            self._record(Op("trunc", ino=ino, size=0))
        self._fds[fd] = (ino, append)
        self._positions[fd] = 0
        return fd

    def open_append(self, path: Path) -> int:
        with self._lock:
            return self._open(path, super().open_append(path), append=True, truncate=False)

    def open_new(self, path: Path, mode: int = 0o640) -> int:
        with self._lock:
            return self._open(path, super().open_new(path, mode), append=False, truncate=True)

    def write(self, fd: int, data: bytes) -> int:
        with self._lock:
            written = super().write(fd, data)
            ino, append = self._fds[fd]
            offset = len(self.live.files.get(ino, b"")) if append else self._positions[fd]
            self._record(Op("write", ino=ino, offset=offset, data=bytes(data[:written])))
            self._positions[fd] = offset + written
            return written

    def fsync(self, fd: int) -> None:
        with self._lock:
            super().fsync(fd)
            self._record(Op("fsync", ino=self._fds[fd][0]))

    def ftruncate(self, fd: int, length: int) -> None:
        with self._lock:
            super().ftruncate(fd, length)
            self._record(Op("trunc", ino=self._fds[fd][0], size=length))

    def close(self, fd: int) -> None:
        with self._lock:
            super().close(fd)
            self._fds.pop(fd, None)
            self._positions.pop(fd, None)

    def replace(self, source: Path, target: Path) -> None:
        with self._lock:
            src_parent, src_name = self._parent_and_name(source)
            ino = self.live.dirs[src_parent].get(src_name)
            super().replace(source, target)
            dst_parent, dst_name = self._parent_and_name(target)
            assert ino is not None
            self._record(
                Op(
                    "rename",
                    ino=ino,
                    parent=src_parent,
                    name=src_name,
                    parent2=dst_parent,
                    name2=dst_name,
                )
            )

    def unlink(self, path: Path) -> None:
        with self._lock:
            parent, name = self._parent_and_name(path)
            ino = self.live.dirs[parent].get(name)
            super().unlink(path)
            if ino is not None:
                self._record(Op("unlink", ino=ino, parent=parent, name=name))

    def mkdir(self, path: Path) -> bool:
        with self._lock:
            made = super().mkdir(path)
            if made:
                parent, name = self._parent_and_name(path)
                self._record(Op("mkdir", ino=self._new_ino(), parent=parent, name=name))
            return made

    def fsync_dir(self, path: Path) -> None:
        with self._lock:
            super().fsync_dir(path)
            ino = self.live.lookup(self._parts(path))
            assert ino is not None, f"fsync of a folder the recorder does not know: {path}"
            self._record(Op("fsyncdir", ino=ino))


# --------------------------------------------------------------------------- crash states


@dataclass(frozen=True)
class Expectation:
    """What the workload had been told by the crash point."""

    confirmed: frozenset[int]  # seqs whose append had returned
    centre: int  # the highest seq the centre had acknowledged (acknowledge() called)
    cursor: int  # the highest acknowledge() that had returned

    @property
    def key(self) -> tuple[int, int, int]:
        return (len(self.confirmed), self.centre, self.cursor)


@dataclass(frozen=True)
class Trace:
    """A recorded run: the starting image, the operations, and every event the run made."""

    name: str
    initial: Tree
    ops: list[Op]
    events: dict[int, Event]  # every event appended, by seq (including those there at the start)
    log_parts: tuple[str, ...]  # where the log lives below the recorded folder
    config: StoreConfig
    preexisting: frozenset[int] = frozenset()  # seqs already durable when the recording began
    initial_cursor: int = 0

    def crash_points(self) -> list[int]:
        """k: the state after ops[:k]. One per disk operation, and the end."""
        return [k for k in range(1, len(self.ops) + 1) if self.ops[k - 1].kind != "mark"]

    def expectation(self, k: int) -> Expectation:
        confirmed = set(self.preexisting)
        centre = cursor = self.initial_cursor
        for op in self.ops[:k]:
            if op.kind != "mark":
                continue
            if op.label == "confirmed":
                confirmed.add(op.value)
            elif op.label == "centre":
                centre = max(centre, op.value)
            elif op.label == "cursor":
                cursor = max(cursor, op.value)
        return Expectation(frozenset(confirmed), centre, cursor)


@dataclass(frozen=True)
class CrashState:
    model: str
    kind: str  # how it was made: minimal, all, torn512, drop-one, prefix, random...
    point: int
    tree: Tree
    expect: Expectation


class CrashModel:
    """Which operations a power cut at a crash point may have kept, and how."""

    name = "model"

    def __init__(self, trace: Trace) -> None:
        self.trace = trace
        ops = trace.ops
        n = len(ops)
        # For op i: the index of the first later operation that makes it durable.
        self._file_sync = [n + 1] * n
        self._dir_sync = [n + 1] * n
        self._any_sync = [n + 1] * n
        self._link_sync = [n + 1] * n  # a rename's target folder alone
        next_file: dict[int, int] = {}
        next_dir: dict[int, int] = {}
        next_any = n + 1
        for i in range(n - 1, -1, -1):
            op = ops[i]
            if op.is_data_op:
                self._file_sync[i] = next_file.get(op.ino, n + 1)
            if op.kind in ("creat", "mkdir", "unlink"):
                self._dir_sync[i] = next_dir.get(op.parent, n + 1)
            if op.kind == "rename":
                target = next_dir.get(op.parent2, n + 1)
                source = next_dir.get(op.parent, n + 1)
                self._dir_sync[i] = max(target, source)
                self._link_sync[i] = target
            self._any_sync[i] = next_any
            if op.kind == "fsync":
                next_file[op.ino] = i
                next_any = i
            elif op.kind == "fsyncdir":
                next_dir[op.ino] = i
                next_any = i

    def states(self, k: int, rng: random.Random) -> Iterator[CrashState]:
        raise NotImplementedError

    def _build(
        self, k: int, decide: Callable[[int, Op], tuple[Any, ...] | None], kind: str
    ) -> CrashState:
        tree = self.trace.initial.copy()
        for i, op in enumerate(self.trace.ops[:k]):
            if op.kind in ("mark", "fsync", "fsyncdir"):
                continue
            variant = decide(i, op)
            if variant is not None:
                tree.apply(op, variant)
        return CrashState(self.name, kind, k, tree, self.trace.expectation(k))


def tears(op: Op, rng: random.Random) -> list[tuple[str, tuple[Any, ...]]]:
    """Ways a write can be cut: at a 512-byte and a 4096-byte boundary of the file, and at a
    random byte (each only when it falls inside the write)."""
    out: list[tuple[str, tuple[Any, ...]]] = []
    end = op.offset + len(op.data)
    for size in (512, 4096):
        boundary = (end - 1) // size * size
        if op.offset < boundary < end:
            out.append((f"torn{size}", ("torn", boundary - op.offset)))
    if len(op.data) > 1:
        out.append(("torn-random", ("torn", rng.randrange(1, len(op.data)))))
    return out


class PosixModel(CrashModel):
    """Only what was fsync'd is promised: a file's data after an fsync of the file, a name in a
    folder after an fsync of the folder. Anything else may or may not be there, in any order."""

    name = "posix"

    def _pinned(self, i: int, k: int) -> bool:
        op = self.trace.ops[i]
        if op.is_data_op:
            return self._file_sync[i] < k
        if op.is_dir_op:
            return self._dir_sync[i] < k
        return True

    def states(self, k: int, rng: random.Random) -> Iterator[CrashState]:
        ops = self.trace.ops
        loose = [
            i
            for i in range(k)
            if (ops[i].is_data_op or ops[i].is_dir_op) and not self._pinned(i, k)
        ]
        full = ("full",)

        def keep_all(i: int, op: Op) -> tuple[Any, ...]:
            return full

        def only_pinned(i: int, op: Op) -> tuple[Any, ...] | None:
            return full if self._pinned(i, k) else None

        yield self._build(k, keep_all, "all")
        if not loose:
            return
        yield self._build(k, only_pinned, "minimal")
        writes = [i for i in loose if ops[i].kind == "write" and ops[i].data]
        if writes:
            last = writes[-1]
            op = ops[last]
            variants = tears(op, rng)
            variants.append(("zero", ("zero",)))
            if len(op.data) > 1:
                # A hole: the sector holding the start of the write never reached the disk, the
                # rest did (a line whose beginning is zeros but whose newline is there).
                cut = min(len(op.data) - 1, max(1, 512 - op.offset % 512))
                variants.append(("hole", ("hole", 0, cut)))
            for label, variant in variants:

                def one_variant(
                    i: int, _op: Op, last: int = last, variant: tuple[Any, ...] = variant
                ) -> tuple[Any, ...]:
                    return variant if i == last else full

                yield self._build(k, one_variant, label)
        for dropped in loose[-8:]:

            def drop_one(i: int, _op: Op, dropped: int = dropped) -> tuple[Any, ...] | None:
                return None if i == dropped else full

            yield self._build(k, drop_one, "drop-one")
            op = ops[dropped]
            if op.kind == "rename" and op.parent != op.parent2 and self._link_sync[dropped] < k:

                def link_only(i: int, _op: Op, dropped: int = dropped) -> tuple[Any, ...]:
                    return ("link_only",) if i == dropped else full

                yield self._build(k, link_only, "rename-half")
        for _ in range(2):
            choice: dict[int, tuple[Any, ...] | None] = {}
            for i in loose:
                if rng.random() < 0.5:
                    choice[i] = None
                elif ops[i].kind == "write" and ops[i].data and rng.random() < 0.3:
                    options = [v for _label, v in tears(ops[i], rng)] + [("zero",)]
                    choice[i] = rng.choice(options)
                else:
                    choice[i] = full

            def random_subset(
                i: int, _op: Op, choice: dict[int, tuple[Any, ...] | None] = choice
            ) -> tuple[Any, ...] | None:
                return choice.get(i, full)

            yield self._build(k, random_subset, "random")


class Ext4Model(CrashModel):
    """ext4 with data=ordered: folder operations persist in the order they were made and every
    fsync (of anything) commits those before it; a file's data persists as a prefix of what was
    written to it, the last write perhaps torn; a rename carries the data written before it."""

    name = "ext4"

    def states(self, k: int, rng: random.Random) -> Iterator[CrashState]:
        ops = self.trace.ops
        loose_dir = [i for i in range(k) if ops[i].is_dir_op and self._any_sync[i] >= k]
        loose_data: dict[int, list[int]] = {}
        for i in range(k):
            if ops[i].is_data_op and self._file_sync[i] >= k:
                loose_data.setdefault(ops[i].ino, []).append(i)
        full = ("full",)

        def build(
            kind: str,
            dir_prefix: int,
            data_prefix: dict[int, int],
            torn: dict[int, tuple[Any, ...]],
        ) -> CrashState:
            kept_dir = set(loose_dir[:dir_prefix])
            kept_data = {i for ino, seq in loose_data.items() for i in seq[: data_prefix[ino]]}
            # A rename that persisted carries the data written to that file before it.
            for i in kept_dir:
                if ops[i].kind == "rename":
                    kept_data.update(j for j in loose_data.get(ops[i].ino, []) if j < i)
            loose_dir_set = set(loose_dir)
            loose_data_set = {i for seq in loose_data.values() for i in seq}

            def decide(i: int, op: Op) -> tuple[Any, ...] | None:
                if i in loose_dir_set:
                    return full if i in kept_dir else None
                if i in loose_data_set:
                    if i not in kept_data:
                        return None
                    return torn.get(i, full)
                return full

            return self._build(k, decide, kind)

        everything = {ino: len(seq) for ino, seq in loose_data.items()}
        nothing = dict.fromkeys(loose_data, 0)
        yield build("all", len(loose_dir), everything, {})
        if not loose_dir and not loose_data:
            return
        yield build("minimal", 0, nothing, {})
        for prefix in range(max(0, len(loose_dir) - 4), len(loose_dir)):
            yield build("dir-prefix", prefix, everything, {})
        yield build("data-dropped", len(loose_dir), nothing, {})
        writes = [i for seq in loose_data.values() for i in seq if ops[i].kind == "write"]
        if writes:
            last = max(writes)
            for label, variant in tears(ops[last], rng):
                yield build(label, len(loose_dir), everything, {last: variant})
        for _ in range(2):
            prefixes = {ino: rng.randint(0, len(seq)) for ino, seq in loose_data.items()}
            torn: dict[int, tuple[Any, ...]] = {}
            for ino, count in prefixes.items():
                if count and rng.random() < 0.3:
                    last_kept = loose_data[ino][count - 1]
                    if ops[last_kept].kind == "write":
                        options = tears(ops[last_kept], rng)
                        if options:
                            torn[last_kept] = rng.choice(options)[1]
            yield build("random", rng.randint(0, len(loose_dir)), prefixes, torn)


MODELS: dict[str, type[CrashModel]] = {"ext4": Ext4Model, "posix": PosixModel}


# --------------------------------------------------------------------------- checking


class _Unsynced(DiskIO):
    """The disk the checks open states with: a state is already what a power cut left, so its
    recovery's own fsyncs need not reach a real disk (that only makes the checks slow)."""

    def fsync(self, fd: int) -> None:
        pass

    def fsync_dir(self, path: Path) -> None:
        pass


CHECK_DISK = _Unsynced()


@dataclass
class Failure:
    kind: str
    detail: str
    state: CrashState | None = None


def check_state(folder: Path, trace: Trace, state: CrashState) -> list[Failure]:
    """Open the log the state left and check what recovery made of it. `folder` holds the
    state's files (the recorded folder's copy)."""
    expect = state.expect
    log_dir = folder.joinpath(*trace.log_parts)
    failures: list[Failure] = []

    def fail(kind: str, detail: str) -> None:
        failures.append(Failure(kind, detail, state))

    try:
        log = EventLog(log_dir, trace.config, disk=CHECK_DISK)
    except Exception as exc:
        fail("open-failed", f"{type(exc).__name__}: {exc}")
        return failures
    try:
        report = log.recovery
        events = list(log.iter_events())
        seqs = [e.seq for e in events]
        if len(set(seqs)) != len(seqs):
            doubled = sorted(s for s, n in Counter(seqs).items() if n > 1)
            fail("duplicate", f"seqs read twice: {doubled[:5]}")
        elif seqs != sorted(seqs):
            fail("seq-order", f"seqs out of order: {seqs[:10]}")
        window = log.events_between(
            datetime(1970, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC)
        )
        window_seqs = [e.seq for e in window]
        if len(set(window_seqs)) != len(window_seqs):
            fail("duplicate", "events_between yields a seq twice")
        stored = {e.seq: e for e in events}
        for seq in sorted(expect.confirmed):
            event = stored.get(seq)
            if event is None:
                fail("lost-confirmed", f"confirmed seq {seq} missing")
            elif event != trace.events[seq]:
                fail("changed", f"confirmed seq {seq} differs")
        for seq, event in stored.items():
            if trace.events.get(seq) != event:
                fail("invented", f"seq {seq} was never appended with this content")
        verdict = verify_log(log)
        if not verdict.ok and not report.lost_anything:
            fail("chain-unreported", f"{verdict} with recovery {report.summary()}")
        if report.lost_anything and all(s in stored for s in expect.confirmed):
            fail("false-alarm", f"recovery reports a loss: {report.summary()}")
        last_stored = max(stored, default=0)
        if log.acknowledged_seq > expect.centre:
            fail("cursor-ahead", f"cursor {log.acknowledged_seq} > centre {expect.centre}")
        if log.acknowledged_seq > last_stored:
            fail("cursor-past-log", f"cursor {log.acknowledged_seq} > last {last_stored}")
        if log.acknowledged_seq < expect.cursor:
            fail("cursor-back", f"cursor {log.acknowledged_seq} < confirmed {expect.cursor}")
        if log.last_seq != last_stored:
            fail("seq-reuse", f"the log continues after {log.last_seq}, last stored {last_stored}")
        # A second start right after this one (a second power cut, before any fold): whatever
        # was repaired must not be found again.
        again_dir = Path(tempfile.mkdtemp(prefix="again-", dir=folder))
        shutil.copytree(log_dir, again_dir / "log")
        fields = _fields(10_000 + state.point)
        added = log.append(fields)
    except Exception as exc:
        fail("check-raised", f"{type(exc).__name__}: {exc}")
        log.close()
        return failures
    log.close()
    try:
        with EventLog(again_dir / "log", trace.config, disk=CHECK_DISK) as again:
            repeated = again.recovery
            if not repeated.clean:
                fail("repeat-report", f"second open: {repeated.summary()}")
        with EventLog(log_dir, trace.config, disk=CHECK_DISK) as reopened:
            if reopened.event(added.seq) != added:
                fail("append-lost", f"seq {added.seq} appended after recovery is gone")
            if not reopened.recovery.clean:
                fail("repeat-report", f"after a clean close: {reopened.recovery.summary()}")
            if not verify_log(reopened).ok:
                fail("chain-broken-after", str(verify_log(reopened)))
    except Exception as exc:
        fail("reopen-failed", f"{type(exc).__name__}: {exc}")
    return failures


# --------------------------------------------------------------------------- workloads

BASE = datetime(2026, 11, 29, 5, 20, tzinfo=UTC)
OLD = BASE - timedelta(days=60)

# Small sizes so that a few dozen events cross folds, sealed segments and retention.
CONFIG = StoreConfig(segment_events=6, checkpoint_events=3, retention_days=30)


def _fields(n: int, when: datetime | None = None) -> dict[str, Any]:
    return {
        "kiosk_id": "k1",
        "site_id": "S01",
        "cadre_id": f"C{n % 5:04d}",
        "badge_serial": 1,
        "kind": "arrival" if n % 2 else "departure",
        "source": "camera",
        "device_time": when or BASE + timedelta(minutes=n),
        "boot_id": "boot-a",
        "monotonic_ns": 1_000_000 + n,
        "clock_trusted": True,
        "reason": "" if n % 3 else "名字 ü",
    }


class Workload:
    """Drives a log over a RecordingDisk and marks what it was told."""

    def __init__(self, disk: RecordingDisk, log_dir: Path, config: StoreConfig) -> None:
        self.disk = disk
        self.log_dir = log_dir
        self.config = config
        self.events: dict[int, Event] = {}
        self.log: EventLog | None = None
        self.n = 0
        self.long_reason = False

    def open(self) -> EventLog:
        self.log = EventLog(self.log_dir, self.config, disk=self.disk)
        return self.log

    def append(self, count: int, when: datetime | None = None, settle: bool = True) -> None:
        assert self.log is not None
        for _ in range(count):
            self.n += 1
            fields = _fields(self.n, when and when + timedelta(minutes=self.n))
            if self.long_reason:
                fields.update(
                    source="manual", operator="组长", reason="补登：" * (50 + self.n % 17)
                )
            event = self.log.append(fields)
            self.disk.mark("confirmed", event.seq)
            self.events[event.seq] = event
            if settle:
                self.log.wait_idle()

    def acknowledge(self, through: int) -> None:
        assert self.log is not None
        self.disk.mark("centre", through)
        self.log.acknowledge(through)
        self.disk.mark("cursor", through)

    def close(self) -> None:
        assert self.log is not None
        self.log.close()
        self.log = None


def _events_in(log_dir: Path, config: StoreConfig) -> tuple[dict[int, Event], int]:
    probe = Path(tempfile.mkdtemp(prefix="probe-"))
    try:
        shutil.copytree(log_dir, probe / "log")
        with EventLog(probe / "log", config) as log:
            return {e.seq: e for e in log.iter_events()}, log.acknowledged_seq
    finally:
        shutil.rmtree(probe, ignore_errors=True)


def record(
    name: str,
    root: Path,
    run: Callable[[Workload], None],
    config: StoreConfig = CONFIG,
    prepare: Callable[[Path], None] | None = None,
) -> Trace:
    """Record `run` over a fresh folder `root` (made ready by `prepare`, not recorded)."""
    root.mkdir(parents=True, exist_ok=True)
    log_parts = ("instance", "log")
    log_dir = root.joinpath(*log_parts)
    preexisting: dict[int, Event] = {}
    cursor = 0
    if prepare is not None:
        prepare(root)
        if log_dir.exists():
            preexisting, cursor = _events_in(log_dir, config)
    disk = RecordingDisk(root)
    workload = Workload(disk, log_dir, config)
    workload.n = 1000 * (len(preexisting) + 1)
    run(workload)
    if workload.log is not None:
        workload.close()
    return Trace(
        name=name,
        initial=disk.initial,
        ops=disk.ops,
        events={**preexisting, **workload.events},
        log_parts=log_parts,
        config=workload.config,
        preexisting=frozenset(preexisting),
        initial_cursor=cursor,
    )


def first_start(w: Workload) -> None:
    """A new kiosk: the folders made, events old enough for retention, folds, a sealed segment,
    cursor writes, segments moved to archive/, a clean close and a second start."""
    w.open()
    w.append(4, when=OLD)
    w.append(9, when=OLD)
    w.acknowledge(7)
    w.append(5)
    w.acknowledge(14)
    w.append(4)
    w.close()
    w.open()
    w.append(2)
    w.acknowledge(20)


def burst(w: Workload) -> None:
    """Appends that do not wait for the background fold: journals switched while events arrive."""
    w.open()
    w.append(3, settle=False)
    w.acknowledge(2)
    w.append(14, settle=False)
    w.acknowledge(12)
    w.append(7, settle=False)


def _history(root: Path) -> None:
    with EventLog(root / "instance" / "log", CONFIG) as log:
        for n in range(1, 15):
            log.append(_fields(n, OLD + timedelta(minutes=n)))
        log.acknowledge(9)


def _killed_mid_journal(root: Path) -> None:
    """A log left by a crash: events in the journal only, a torn last line, a stale temp file."""
    scratch = root.parent / (root.name + "-scratch")
    _history(scratch)
    running = scratch / "instance" / "log"
    log_dir = root / "instance" / "log"
    with EventLog(running, StoreConfig(segment_events=6, checkpoint_events=1000)) as log:
        for n in range(20, 25):
            log.append(_fields(n))
        shutil.copytree(running, log_dir)  # the files as the kill left them
    shutil.rmtree(scratch)
    journal = sorted((log_dir / "journal").glob("journal-*.jsonl"))[-1]
    with journal.open("ab") as out:
        out.write(b'{"event_id": "half a li')
    (log_dir / "manifest.json.tmp").write_bytes(b"{")


def restart_after_history(w: Workload) -> None:
    """A restart of a log with history: recovery's own writes, then appends and retention."""
    w.open()
    w.append(8)
    w.acknowledge(w.log.last_seq - 2 if w.log else 0)
    w.append(6)


LONG_LINES = StoreConfig(segment_events=24, checkpoint_events=10)


def long_lines(w: Workload) -> None:
    """Journal lines of 1-2 KB (a reason in Chinese), ten to a fold: lines cross the 4096-byte
    boundaries of the file, so writes are torn inside a page as well as between sectors."""
    w.config = LONG_LINES
    w.open()
    w.long_reason = True
    w.append(12)
    w.acknowledge(10)
    w.append(16, settle=False)
    w.acknowledge(20)


def _manifest_lost(root: Path) -> None:
    """A log whose manifest is gone (bit rot): the first open rebuilds it from the segments."""
    _history(root)
    (root / "instance" / "log" / "manifest.json").unlink()


WORKLOADS: dict[str, tuple[Callable[[Workload], None], Callable[[Path], None] | None]] = {
    "first-start": (first_start, None),
    "burst": (burst, None),
    "long-lines": (long_lines, None),
    "restart": (restart_after_history, _history),
    "restart-after-crash": (restart_after_history, _killed_mid_journal),
    "manifest-lost": (restart_after_history, _manifest_lost),
}


# --------------------------------------------------------------------------- running


@dataclass
class Tally:
    tried: Counter[str] = field(default_factory=Counter)  # by model
    # (model, failure kind) -> states that failed so (a state can fail in several ways)
    failed: Counter[tuple[str, str]] = field(default_factory=Counter)
    by_state_kind: Counter[tuple[str, str]] = field(default_factory=Counter)
    by_phase: Counter[tuple[str, str]] = field(default_factory=Counter)
    examples: list[tuple[Trace, Failure]] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        self.tried.update(other.tried)
        self.failed.update(other.failed)
        self.by_state_kind.update(other.by_state_kind)
        self.by_phase.update(other.by_phase)
        self.examples += other.examples[: max(0, 20 - len(self.examples))]

    def failures(self, model: str, kind: str | None = None) -> int:
        return sum(n for (m, k), n in self.failed.items() if m == model and kind in (None, k))


def phases(trace: Trace) -> list[str]:
    """What the store was doing at each operation, from the file it touched: for saying which
    kinds of crash point the states covered."""
    names = {ino: parts[-1] for parts, ino, _is_dir in trace.initial.reachable()}
    out: list[str] = []
    for op in trace.ops:
        if op.kind in ("creat", "mkdir"):
            names[op.ino] = op.name
        elif op.kind == "rename":
            names[op.ino] = op.name2
        name = op.name2 if op.kind == "rename" else op.name or names.get(op.ino, "")
        if op.kind == "mark":
            phase = "mark"
        elif op.kind == "fsyncdir":
            phase = out[-1] if out else "folders made (first start)"
        elif op.kind == "mkdir" and name == "damaged":
            phase = "recovery: damaged bytes kept aside"
        elif op.kind == "mkdir":
            phase = "folders made (first start)"
        elif op.kind == "rename" and op.parent != op.parent2:
            phase = "retention (segment to archive/)"
        elif "-journal-" in name or ".torn" in name or ".bad" in name:
            phase = "recovery: damaged bytes kept aside"
        elif name.startswith("journal-") and op.kind == "trunc":
            phase = "recovery: journal tail cut"
        elif name.startswith("journal-"):
            phase = "journal rotation" if op.kind in ("creat", "unlink") else "journal append"
        elif name.startswith("seg-"):
            phase = "fold: segment written"
        elif name.startswith("manifest"):
            phase = "fold: manifest written"
        elif name.startswith("cursor"):
            phase = "cursor written"
        else:
            phase = "other: " + (name or op.kind)
        out.append(phase)
    return out


def scratch_dir() -> Path | None:
    """States are built in memory-backed /dev/shm where there is one: nothing there is slowed
    down by the machine's real disk, and nothing about a state depends on it."""
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else None


def explore(
    trace: Trace,
    models: tuple[str, ...] = ("ext4", "posix"),
    *,
    every: int = 1,
    seed: int = 1,
    workdir: Path | None = None,
    points: list[int] | None = None,
) -> Tally:
    """Every `every`-th crash point of `trace` under each model, each distinct state once."""
    rng = random.Random(seed)
    tally = Tally()
    labels = phases(trace)
    base = Path(tempfile.mkdtemp(prefix="powercut-", dir=workdir or scratch_dir()))
    seen: set[tuple[str, str, tuple[int, int, int]]] = set()
    try:
        if points is not None:
            chosen = points
        else:
            every_point = trace.crash_points()
            chosen = every_point[::every]
            if every_point and every_point[-1] not in chosen:
                chosen.append(every_point[-1])
        number = 0
        for model_name in models:
            model = MODELS[model_name](trace)
            for k in chosen:
                for state in model.states(k, rng):
                    key = (model_name, state.tree.digest(), state.expect.key)
                    if key in seen:
                        continue
                    seen.add(key)
                    number += 1
                    folder = base / f"s{number}"
                    state.tree.materialize(folder)
                    tally.tried[model_name] += 1
                    tally.by_state_kind[(model_name, state.kind)] += 1
                    tally.by_phase[(model_name, labels[k - 1])] += 1
                    failures = check_state(folder, trace, state)
                    for kind in {failure.kind for failure in failures}:
                        tally.failed[(model_name, kind)] += 1
                    for failure in failures[:1]:
                        if len(tally.examples) < 20:
                            tally.examples.append((trace, failure))
                    shutil.rmtree(folder, ignore_errors=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return tally


def describe_failure(trace: Trace, failure: Failure) -> str:
    """One line: where the crash was, what the state was made of, what went wrong."""
    state = failure.state
    if state is None:
        return f"{failure.kind}: {failure.detail}"
    ops = trace.ops[max(0, state.point - 4) : state.point]
    recent = "; ".join(op.describe() for op in ops)
    return (
        f"[{trace.name} {state.model} {state.kind} at op {state.point}/{len(trace.ops)}] "
        f"{failure.kind}: {failure.detail} (last ops: {recent})"
    )
