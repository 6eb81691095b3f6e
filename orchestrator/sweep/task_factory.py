"""Trials from a ``task_factory`` (see ``orchestrator.spec.factory`` for the kinds).

``expand_task_factory`` is a generator: trials are made one at a time, so a million-trial
factory costs no more memory than a ten-trial one. Order is deterministic: the order of
``itertools`` for parametric sweeps, draw order for random, sorted paths for local files and the
generator's order for custom factories.
"""
from __future__ import annotations

import fnmatch
import importlib
import itertools
import math
import os
import posixpath
import random
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import SpecError, Where
from orchestrator.model import JobInput
from orchestrator.spec.factory import (
    PARAM_NAME,
    CustomFactory,
    FileFactory,
    ParametricSweep,
    TaskFactory,
)
from orchestrator.sweep.search_space import iter_product
from orchestrator.sweep.trial import Trial


@dataclass(frozen=True)
class ListedFile:
    """A file found by a file factory: ``path`` relative to the root ('/'-separated) and its URL;
    for a blob, ``path`` is its name in ``container`` and ``url`` carries no credentials."""

    path: str
    url: str
    container: str | None = None


BlobLister = Callable[[str, str], Iterable[ListedFile]]
"""Lists the blobs of a container whose names start with a prefix, in name order (a backend's
``BlobFiles`` capability): ``lister(container, prefix)``."""


def count_task_factory(factory: TaskFactory, *, limit: int | None) -> int | None:
    """Trials the factory yields, computed without expanding; None when only listing can tell."""
    total: int | None
    if factory.parametric_sweep is not None:
        total = _count_parametric(factory.parametric_sweep)
    elif factory.random is not None:
        total = factory.random.generate
    elif factory.repeat is not None:
        total = factory.repeat
    else:
        total = None
    if total is None:
        return None
    return total if limit is None else min(total, limit)


def _count_parametric(sweep: ParametricSweep) -> int:
    if sweep.product is not None:
        return math.prod(len(item.as_range()) for item in sweep.product)
    if sweep.product_iterables is not None:
        return math.prod(len(values) for values in sweep.product_iterables)
    if sweep.combinations is not None:
        n, r = len(sweep.combinations.iterable), sweep.combinations.length
        return math.comb(n + r - 1, r) if sweep.combinations.replacement else math.comb(n, r)
    if sweep.permutations is not None:
        return math.perm(len(sweep.permutations.iterable), sweep.permutations.effective_length())
    return len((sweep.zip or [[]])[0])


def expand_task_factory(factory: TaskFactory, *, seed: int, limit: int | None, key_path: str = "",
                        base_dir: Path | None = None, blob_lister: BlobLister | None = None) -> Iterator[Trial]:
    """Stream the factory's trials (at most ``limit``).

    ``seed`` is used by a random factory without its own seed. ``base_dir`` resolves a relative
    ``local_path`` and is put on ``sys.path`` while a custom module is imported. ``blob_lister``
    lists an ``azure_storage`` file factory's blobs; each such trial carries its blob as an input.
    ``key_path`` is the task's place in the spec (``tasks[2]``), used in errors. Problems found
    while expanding (missing directory, no lister, custom import or generator failure) raise
    ``SpecError``.
    """
    where = f"{key_path}.task_factory" if key_path else "task_factory"
    names = factory.names
    if factory.file is not None and factory.file.azure_storage is not None:
        yield from itertools.islice(_blob_trials(factory.file, f"{where}.file", blob_lister), limit)
        return
    source: Iterable[dict[str, Any]]
    if factory.parametric_sweep is not None:
        source = (_positional(values, names) for values in _parametric_values(factory.parametric_sweep))
    elif factory.random is not None:
        rng = random.Random(factory.random.seed if factory.random.seed is not None else seed)
        draw = factory.random.sampler()
        source = (_positional((draw(rng),), names) for _ in range(factory.random.generate))
    elif factory.repeat is not None:
        source = ({} for _ in range(factory.repeat))
    elif factory.file is not None:
        source = _file_params(factory.file, f"{where}.file", base_dir)
    else:
        assert factory.custom is not None
        source = _custom_params(factory.custom, names, f"{where}.custom", base_dir)
    for index, params in enumerate(itertools.islice(source, limit)):
        yield Trial(index=index, params=params)


def _positional(values: Sequence[Any], names: Sequence[str] | None) -> dict[str, Any]:
    keys = names if names is not None else [str(position) for position in range(len(values))]
    return dict(zip(keys, values, strict=True))


def _parametric_values(sweep: ParametricSweep) -> Iterator[Sequence[Any]]:
    if sweep.product is not None:
        return iter_product([item.as_range() for item in sweep.product])
    if sweep.product_iterables is not None:
        return iter_product(sweep.product_iterables)
    if sweep.combinations is not None:
        combine = itertools.combinations_with_replacement if sweep.combinations.replacement else itertools.combinations
        return combine(sweep.combinations.iterable, sweep.combinations.length)
    if sweep.permutations is not None:
        return itertools.permutations(sweep.permutations.iterable, sweep.permutations.effective_length())
    return zip(*(sweep.zip or []), strict=True)


def _blob_trials(spec: FileFactory, where: str, lister: BlobLister | None) -> Iterator[Trial]:
    """One trial per blob (Shipyard's order: the container's name order), its blob as an input."""
    source = spec.azure_storage
    assert source is not None
    if lister is None:
        raise SpecError("an azure_storage file factory lists blobs through its pool's backend, and none was given",
                        where=Where(key_path=f"{where}.azure_storage"),
                        hint="submit it to a pool whose backend reads blob storage (azure)")
    include = source.include if source.include is not None else spec.include
    exclude = source.exclude if source.exclude is not None else spec.exclude
    index = 0
    for entry in lister(source.container_name, source.prefix):
        if include and not any(fnmatch.fnmatchcase(entry.path, pattern) for pattern in include):
            continue
        if any(fnmatch.fnmatchcase(entry.path, pattern) for pattern in exclude):
            continue
        params = file_params(entry)
        target = params[spec.blob_filepath]
        yield Trial(index=index, params=params,
                    inputs=(JobInput(to=target, blob=f"{source.container_name}/{entry.path}"),))
        index += 1


def _file_params(spec: FileFactory, where: str, base_dir: Path | None) -> Iterator[dict[str, Any]]:
    assert spec.local_path is not None
    root = Path(spec.local_path).expanduser()
    if not root.is_absolute() and base_dir is not None:
        root = base_dir / root
    if not root.is_dir():
        raise SpecError(f"local_path {str(root)!r} is not a directory", where=Where(key_path=f"{where}.local_path"),
                        hint="give a directory that exists (relative paths start at the job file's folder)")
    listed: Iterable[ListedFile] = list_local_files(root, recursive=spec.recursive)
    for entry in listed:
        if not spec.recursive and "/" in entry.path:
            continue
        if spec.include and not any(fnmatch.fnmatchcase(entry.path, pattern) for pattern in spec.include):
            continue
        if any(fnmatch.fnmatchcase(entry.path, pattern) for pattern in spec.exclude):
            continue
        yield file_params(entry)


def file_params(entry: ListedFile) -> dict[str, str]:
    """The substitutions of one file, as Shipyard names them: ``a.tar.gz`` has
    ``file_name_no_extension`` ``a`` (the name before its first dot); a blob also has
    ``file_path_with_container``."""
    file_name = posixpath.basename(entry.path)
    params = {
        "url": entry.url,
        "file_path": entry.path,
        "file_name": file_name,
        "file_name_no_extension": file_name.split(".")[0],
    }
    if entry.container is not None:
        params["file_path_with_container"] = f"{entry.container}/{entry.path}"
    return params


def list_local_files(root: Path, *, recursive: bool) -> Iterator[ListedFile]:
    """Files under ``root`` in sorted path order (``a.txt`` < ``a/b.txt`` < ``b.txt``, as sorting
    the relative paths gives), streamed: a folder is listed when it is reached, and its files
    come before the entries that sort after it. Symbolic links to folders are not followed."""
    stack = [_sorted_entries(root, "")]
    while stack:
        entry = next(stack[-1], None)
        if entry is None:
            stack.pop()
            continue
        relative, path, is_dir = entry
        if is_dir:
            if recursive:
                stack.append(_sorted_entries(path, relative))
        elif path.is_file():
            yield ListedFile(path=relative, url=path.resolve().as_uri())


def _sorted_entries(directory: Path, prefix: str) -> Iterator[tuple[str, Path, bool]]:
    """(relative path, path, is a folder) of a folder's entries, in the order their paths sort:
    a folder ``d`` sorts as ``d/`` (after ``d.txt`` and ``d-1``, before ``d0``)."""
    with os.scandir(directory) as listing:
        found = [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in listing]
    found.sort(key=lambda item: item[0] + "/" if item[1] else item[0])
    return iter([(f"{prefix}{name}/" if is_dir else f"{prefix}{name}", directory / name, is_dir)
                 for name, is_dir in found])


def _custom_params(spec: CustomFactory, names: Sequence[str] | None, where: str,
                   base_dir: Path | None) -> Iterator[dict[str, Any]]:
    function = _import_function(spec, where, base_dir)
    try:
        items = iter(function(*spec.args, **spec.kwargs))
    except Exception as exc:  # any failure of user code is a spec problem to report
        raise SpecError(f"custom factory {spec.module} failed: {type(exc).__name__}: {exc}",
                        where=Where(key_path=f"{where}.module")) from exc
    position = 0
    while True:
        try:
            item = next(items)
        except StopIteration:
            return
        except Exception as exc:
            raise SpecError(f"custom factory {spec.module} failed after {position} items: {type(exc).__name__}: {exc}",
                            where=Where(key_path=f"{where}.module")) from exc
        yield _custom_item_params(item, names, where, position)
        position += 1


def _import_function(spec: CustomFactory, where: str, base_dir: Path | None) -> Callable[..., Any]:
    module_name, function_name = spec.target()
    added = base_dir is not None and str(base_dir) not in sys.path
    if added:
        sys.path.insert(0, str(base_dir))
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise SpecError(f"cannot import custom factory module {module_name!r}: {type(exc).__name__}: {exc}",
                        where=Where(key_path=f"{where}.module"),
                        hint="make it importable (installed, or next to the job file)") from exc
    finally:
        if added:
            sys.path.remove(str(base_dir))
    function: Callable[..., Any] | None = getattr(module, function_name, None)
    if function is None or not callable(function):
        raise SpecError(f"module {module_name!r} has no function {function_name!r}",
                        where=Where(key_path=f"{where}.module"))
    return function


def _custom_item_params(item: Any, names: Sequence[str] | None, where: str, position: int) -> dict[str, Any]:
    """A dict gives named parameters; a tuple or list positional ones; anything else one positional."""
    if isinstance(item, Mapping):
        bad = [key for key in item if not isinstance(key, str) or not PARAM_NAME.match(key)]
        if bad:
            raise SpecError(f"custom factory item {position} has keys {bad!r} that are not parameter names",
                            where=Where(key_path=f"{where}.module"), hint="use string keys of letters, digits, '_'")
        return dict(item)
    values = tuple(item) if isinstance(item, (tuple, list)) else (item,)
    if names is not None and len(names) != len(values):
        raise SpecError(f"custom factory item {position} has {len(values)} values but names gives {len(names)}",
                        where=Where(key_path=f"{where}.module"))
    return _positional(values, names)
