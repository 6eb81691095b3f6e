"""libyaml's parser (``FastCoreLoader``) reads every file exactly as the pure-Python reference
(``CoreLoader``) does: the same data, the same line and column for every key path, the same
YAML 1.1 warnings, the same refusals; a file libyaml reports a problem in is reported in the
reference's words (``parse_yaml`` reads it again)."""
from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import SpecError
from orchestrator.spec import yaml_core, yaml_source
from orchestrator.spec.yaml_source import Positioned, parse_yaml
from tests.test_hostile import CORPUS

pytestmark = pytest.mark.skipif(yaml_core.FastCoreLoader is None, reason="PyYAML was built without libyaml")
REPO = Path(__file__).resolve().parent.parent

SNIPPETS = {
    "flow-and-block": "id: j\npool: p\ntasks:\n  - {id: a, command: echo}\n  - id: b\n    command: [python, -c, 'print(1)']\n",
    "scalars": "a: 1\nb: 1.5\nc: true\nd: null\ne: ~\nf: 0x1F\ng: 0o17\nh: .inf\ni: -.INF\nj: 1e-3\nk: +12\nl: ''\n",
    "yaml11-differences": "v: [yes, No, on, OFF, 010, 1:30, 2024-01-02, 0b101, 1_000, y, n]\nw: {A: on}\n",
    "quoted": "a: \"x\\ty\\u00e9\"\nb: 'it''s'\nc: \"line\\nbreak\"\n",
    "block-scalars": "a: |\n  one\n  two\nb: >-\n  folded\n  text\nc: |+\n  keep\n\nd: >2\n   indented\n",
    "multiline-plain": "a: this is\n  a plain scalar\n  over lines\nb: x\n",
    "anchors-merge": "base: &b {cpus: 1, gpus: 0}\nt: {<<: *b, cpus: 2}\nl: &l [1, 2]\nm: *l\n"
                     "many: {<<: [*b, {extra: 1}]}\n",
    "comments": "# top\na: 1 # trailing\n# between\nb:\n  # inside\n  - x # item\n",
    "unicode": "é: ü\nname: \"日本語\"\nemoji: 🎉\nkey with spaces: value with: colon\n",
    "crlf": "id: j\r\npool: p\r\ntasks:\r\n  - command: echo\r\n",
    "document-markers": "---\na: 1\n...\n",
    "explicit-keys": "? a\n: 1\n? [x, y]\n: 2\n",
    "nested": "a:\n  b:\n    c:\n      - d: 1\n        e: [1, {f: g}]\n",
    "tabs": "a: \"x\ty\"\nb: x\ty\n",
    "empty-values": "a:\nb: []\nc: {}\nd: ''\n",
    "long-lines": "a: " + "x" * 5000 + "\n",
    "indentless-sequence": "a:\n- 1\n- 2\nb:\n- {c: d}\n",
    "directive": "%YAML 1.1\n---\na: 1\n",
    "tag-core": "a: !!str 1\nb: !!int '2'\nc: !!float '3'\n",
    "duplicate-key": "a: 1\nb: 2\na: 3\n",
    "syntax-error": "a: [1, 2\nb: 3\n",
    "bad-indent": "a:\n  b: 1\n c: 2\n",
    "tab-indent": "a:\n\tb: 1\n",
    "unclosed-quote": "a: \"oops\nb: 1\n",
    "bad-bool": "a: !!bool yes\n",
    "bad-int": "a: !!int x\n",
    "undefined-alias": "a: *nope\n",
    "key-too-long": "? " + "k" * 2000 + "\n: 1\n" + "k" * 2000 + ": 2\n",
    "bom": "\ufeffa: 1\nb: 2\n",
    "control": "a: 1\nb: \"x\x07\"\n",
    "nul": "a: 1\x00\n",
    "only-comments": "# nothing\n",
    "scalar-document": "just a string\n",
    "flow-edge-cases": "a: [b, ]\nc: {d: 1, }\ne: [f:g]\nh: {\"i\": 1}\nj: [&x 1, *x]\n",
    "line-breaks": "a: 1\rb: 2\r\nc: 3\x85d: 4\u2028e: 5\n",
    "escapes": "a: \"\\x41\\u00e9\\U0001F389\"\nb: \"\\\n  c\"\n",
    "directives": "%YAML 1.2\n---\na: 1\n",
    "unknown-directive": "%FOO bar\n---\na: 1\n",
    "sexagesimal-and-dots": "a: 12:30:00\nb: 0.1.2\nc: 1__0\nd: 1.\ne: .5\n",
}


def corpus() -> dict[str, str]:
    texts = dict(SNIPPETS)
    for path in [*(REPO / "jobs").glob("*.yaml"), *(REPO / "templates").glob("*.yaml"),
                 *(REPO / "orchestrator" / "templates").glob("*.yaml")]:
        texts[f"file:{path.relative_to(REPO)}"] = path.read_text()
    for name, (content, _) in CORPUS.items():
        if name != "too-many-values":  # 8 million values: read by test_hostile
            texts[f"hostile:{name}"] = content.decode("utf-8", "replace")
    return texts


def read(text: str, loader: type[yaml_core.CoreLoader]) -> Positioned | str:
    """What ``loader`` makes of ``text``: the parsed file, or the error, as a comparable text."""
    try:
        return yaml_source._parse(text, "f.yaml", loader)
    except SpecError as exc:
        return f"SpecError: {exc} ({exc.hint})"
    except Exception as exc:  # YAML's own errors, compared by kind only: their words differ
        return f"YAML error: {type(exc).__name__}"


@pytest.mark.parametrize("name", sorted(n for n, t in corpus().items() if yaml_core.fast_reads_alike(t)))
def test_libyaml_reads_each_file_as_the_reference_does(name: str) -> None:
    """Files parse_yaml gives libyaml; the rest go to the reference reader (next test)."""
    text = corpus()[name]
    reference = read(text, yaml_core.CoreLoader)
    fast = read(text, yaml_core.FastCoreLoader)
    if isinstance(fast, str) and fast.startswith("YAML error"):
        return  # parse_yaml reads it again with the reference reader: see the next test
    if isinstance(reference, Positioned) and isinstance(fast, Positioned):
        assert repr(fast.data) == repr(reference.data)
        assert fast.positions == reference.positions
        assert fast.warnings == reference.warnings
    else:
        assert fast == reference


@pytest.mark.parametrize("name", sorted(corpus()))
def test_parse_yaml_reports_problems_in_the_reference_words(name: str) -> None:
    text = corpus()[name]
    try:
        expected: object = yaml_source._parse(text, "f.yaml", yaml_core.CoreLoader)
    except Exception:
        expected = None
    if expected is not None:
        got = parse_yaml(text, "f.yaml")
        assert isinstance(expected, Positioned)
        assert repr(got.data) == repr(expected.data) and got.positions == expected.positions
        return
    with pytest.raises(SpecError) as fast:
        parse_yaml(text, "f.yaml")
    original = yaml_core.FastCoreLoader
    try:
        yaml_core.FastCoreLoader = None
        yaml_source.FastCoreLoader = None
        with pytest.raises(SpecError) as reference:
            parse_yaml(text, "f.yaml")
    finally:
        yaml_core.FastCoreLoader = original
        yaml_source.FastCoreLoader = original
    assert (str(fast.value), fast.value.hint) == (str(reference.value), reference.value.hint)


def test_a_large_job_file_is_read_by_libyaml() -> None:
    text = "id: j\npool: p\ntasks:\n" + "".join(f"  - id: t{i}\n    command: \"true\"\n" for i in range(2000))
    fast = yaml_source._parse(text, "f.yaml", yaml_core.FastCoreLoader)
    assert fast == parse_yaml(text, "f.yaml")
    assert fast.positions[("tasks", 1999, "command")] == (4003, 5)
