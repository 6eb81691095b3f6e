"""Follow growing files read at an offset: the pure core of ``orch logs --tail``.

A ``Follower`` turns a ``read_at(offset) -> FileChunk | None`` function into text: UTF-8 is
decoded incrementally (a character split across reads is never mangled), a file that does not
exist yet is waited for, a file that shrank or whose ``origin`` changed (the task was retried or
requeued: a new attempt's file) restarts from 0 with a visible marker, and after the task ends
there is one more read so nothing is lost.
"""
from __future__ import annotations

import codecs
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

from orchestrator.model import FileChunk

ReadAt = Callable[[int], "FileChunk | None"]
RESTART_MARKER = "[orch: the file restarted from the beginning (the task was retried or requeued)]\n"


@dataclass
class Follower:
    """One file being followed; ``poll`` does one non-blocking step."""

    read_at: ReadAt
    is_finished: Callable[[], bool]
    offset: int = 0
    done: bool = False
    origin: str | None = None
    _decoder: codecs.IncrementalDecoder = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")("replace"))

    def poll(self) -> str:
        """New text since the last poll ('' if none). Sets ``done`` after the final read."""
        if self.done:
            return ""
        finished = self.is_finished()  # checked before reading: the read after the end catches all
        chunk = self.read_at(self.offset)
        text = ""
        if chunk is not None:
            if chunk.size < self.offset or self._new_file(chunk.origin):
                self.offset = 0
                self._decoder.reset()
                text = RESTART_MARKER
                chunk = self.read_at(0)
            if chunk is not None and chunk.origin is not None:
                self.origin = chunk.origin
            if chunk is not None and chunk.data:
                self.offset += len(chunk.data)
                text += self._decoder.decode(chunk.data)
                if self.offset < chunk.size:
                    return text  # more is waiting: not finished yet
        if finished:
            text += self._decoder.decode(b"", final=True)
            self.done = True
        return text

    def _new_file(self, origin: str | None) -> bool:
        return origin is not None and self.origin is not None and origin != self.origin and self.offset > 0


@dataclass
class Backoff:
    """Poll interval: quick while data flows, growing to ``maximum`` while idle."""

    minimum: float = 0.1
    maximum: float = 2.0
    factor: float = 1.6
    current: float = 0.1

    def next(self, got_data: bool) -> float:
        self.current = self.minimum if got_data else min(self.maximum, self.current * self.factor)
        return self.current


def follow(read_at: ReadAt, is_finished: Callable[[], bool], *, sleep: Callable[[float], None] = time.sleep,
           backoff: Backoff | None = None) -> Iterator[str]:
    """Yield text of one file until its task ends and the last bytes are read."""
    follower = Follower(read_at, is_finished)
    pace = backoff or Backoff()
    while not follower.done:
        text = follower.poll()
        if text:
            yield text
        if not follower.done:
            sleep(pace.next(bool(text)))


class LinePrefixer:
    """Buffers partial lines per stream and emits whole lines prefixed with ``[name] ``."""

    def __init__(self) -> None:
        self._partial: dict[str, str] = {}

    def feed(self, name: str, text: str) -> list[str]:
        buffered = self._partial.get(name, "") + text
        *lines, rest = buffered.split("\n")
        self._partial[name] = rest
        return [f"[{name}] {line}" for line in lines]

    def flush(self, name: str) -> list[str]:
        rest = self._partial.pop(name, "")
        return [f"[{name}] {rest}"] if rest else []


def interleave(followers: dict[str, Follower], *, more: Callable[[], dict[str, Follower]] | None = None,
               is_done: Callable[[], bool] = lambda: True, sleep: Callable[[float], None] = time.sleep,
               backoff: Backoff | None = None, prefetch: Callable[[dict[str, Follower]], None] | None = None,
               group: int = 1000) -> Iterator[str]:
    """Yield prefixed whole lines from many files, round-robin, until all followers are done.

    ``more`` is called each round for followers of newly started tasks; the loop ends when every
    follower is done and ``is_done()`` says nothing else will start. Followers are polled in
    groups of up to ``group``; ``prefetch``, when given, is called with each group just before
    it is polled (to read all their files in one go).
    """
    prefixer, pace, active = LinePrefixer(), backoff or Backoff(), dict(followers)
    while True:
        if more:
            for name, follower in more().items():
                active.setdefault(name, follower)
        got = False
        names = list(active)
        for start in range(0, len(names), group):
            batch = {name: active[name] for name in names[start:start + group]}
            if prefetch is not None:
                prefetch(batch)
            for name, follower in batch.items():
                text = follower.poll()
                got = got or bool(text)
                yield from prefixer.feed(name, text)
                if follower.done:
                    yield from prefixer.flush(name)
                    del active[name]
        if not active and is_done():
            return
        sleep(pace.next(got))
