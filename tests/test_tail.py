"""The log-following core: growing files, split characters, retries, late bytes, interleaving."""
from __future__ import annotations

from orchestrator.model import FileChunk
from orchestrator.tail import RESTART_MARKER, Backoff, Follower, follow, interleave


class FakeFile:
    """A file whose content changes between reads, as a task writes it."""

    def __init__(self, steps: list[bytes | None]) -> None:
        self.steps, self.reads = steps, 0
        self.content: bytes | None = None

    def read_at(self, offset: int) -> FileChunk | None:
        if self.reads < len(self.steps):
            self.content = self.steps[self.reads]
        self.reads += 1
        if self.content is None:
            return None
        return FileChunk(data=self.content[offset:offset + 4], size=len(self.content))


def collect(fake: FakeFile, finished_after: int) -> str:
    calls = {"n": 0}

    def finished() -> bool:
        calls["n"] += 1
        return calls["n"] > finished_after

    return "".join(follow(fake.read_at, finished, sleep=lambda s: None))


def test_growing_file_is_followed_to_the_end() -> None:
    fake = FakeFile([None, b"ab", b"abcdef", b"abcdefghij\n"])
    assert collect(fake, finished_after=5) == "abcdefghij\n"


def test_multibyte_character_split_across_reads() -> None:
    text = "é€😀 done\n"
    fake = FakeFile([text.encode()])  # reads 4 bytes at a time: characters straddle reads
    out = collect(fake, finished_after=0)
    assert out == text and "\ufffd" not in out


def test_bytes_arriving_after_the_task_ended_are_read() -> None:
    fake = FakeFile([b"one\n", b"one\ntwo\nthree\n"])
    assert collect(fake, finished_after=1) == "one\ntwo\nthree\n"


def test_file_that_shrank_restarts_with_marker() -> None:
    fake = FakeFile([b"attempt-1 log\n", b"attempt-1 log\n", b"attempt-1 log\n", b"attempt-1 log\n", b"a2\n"])
    out = collect(fake, finished_after=8)
    assert RESTART_MARKER in out and out.endswith("a2\n")


def test_a_new_attempts_file_restarts_even_when_it_is_already_longer() -> None:
    files = [(b"attempt 1\n", "t1"), (b"attempt 1\n", "t1"), (b"second attempt, longer already\n", "t2")]
    reads = {"n": 0}

    def read_at(offset: int) -> FileChunk:
        data, origin = files[min(reads["n"], len(files) - 1)]
        reads["n"] += 1
        return FileChunk(data=data[offset:], size=len(data), origin=origin)

    calls = {"n": 0}

    def finished() -> bool:
        calls["n"] += 1
        return calls["n"] > 3

    out = "".join(follow(read_at, finished, sleep=lambda s: None))
    assert out == "attempt 1\n" + RESTART_MARKER + "second attempt, longer already\n"


def test_missing_file_of_finished_task_ends_quietly() -> None:
    assert collect(FakeFile([None]), finished_after=0) == ""


def test_backoff_grows_while_idle_and_resets_on_data() -> None:
    pace = Backoff(minimum=0.1, maximum=1.0, factor=2.0)
    assert [pace.next(False) for _ in range(5)] == [0.2, 0.4, 0.8, 1.0, 1.0]
    assert pace.next(True) == 0.1


def test_interleave_prefixes_whole_lines_per_task() -> None:
    a = FakeFile([b"a1\na", b"a1\na2\n"])
    b = FakeFile([b"b1\n"])
    done = {"a": 0, "b": 0}

    def finished(name: str):
        def check() -> bool:
            done[name] += 1
            return done[name] > 1
        return check

    followers = {"a": Follower(a.read_at, finished("a")), "b": Follower(b.read_at, finished("b"))}
    lines = list(interleave(followers, sleep=lambda s: None))
    assert sorted(lines) == ["[a] a1", "[a] a2", "[b] b1"]



def test_interleave_polls_in_groups_each_prefetched_just_before() -> None:
    files = {name: FakeFile([f"{name}\n".encode()]) for name in "abcde"}
    followers = {name: Follower(f.read_at, lambda: True) for name, f in files.items()}
    events: list[str] = []
    for name, follower in followers.items():
        follower.read_at = (lambda n, read: lambda offset: events.append(f"read {n}") or read(offset))(name, follower.read_at)
    lines = list(interleave(followers, sleep=lambda s: None, group=2,
                            prefetch=lambda group: events.append("prefetch " + "".join(group))))
    assert sorted(lines) == [f"[{n}] {n}" for n in "abcde"]
    assert events == ["prefetch ab", "read a", "read b", "prefetch cd", "read c", "read d", "prefetch e", "read e"]
