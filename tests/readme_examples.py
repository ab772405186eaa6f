"""The README's code examples as data: fenced blocks, their markers, and the shell commands a test runs.

Pure: no I/O except reading the README in `read_blocks`. tests/integration/test_readme.py runs
what this finds.

How the README marks its blocks (an HTML comment, invisible when rendered, on the line before
the fence):

- ```` ```python ```` and ```` ```sh ```` blocks are examples and run;
- ```` ```text ```` blocks are synopses, diagrams and formulas, and do not run;
- `<!-- example: NAME -->` names an example, so the test can give it the setup the README leaves
  implicit (a `request` object, data to report on) and check what the README says it prints;
- `<!-- not run: REASON -->` keeps an example from running (it installs into the reader's
  environment, or needs a Docker engine); the test keeps that set small.

Long-running commands inside a shell example are not run, by the rules in LONG_RUNNING.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"

RUN_LANGUAGES = ("python", "sh", "php")
# Synopses, diagrams and page snippets: shown, never run (an html snippet is checked by its own test).
TEXT_LANGUAGES = ("text", "html")

_FENCE = re.compile(r"^```([\w-]*)\s*$")
_MARKER = re.compile(r"^<!--\s*(example|not run):\s*(.*?)\s*-->\s*$")
_HEREDOC = re.compile(r"<<-?\s*(['\"]?)(\w+)\1")
_TRAILING_COMMENT = re.compile(r"\s+#.*$")

# (rule, why): a shell command matching the rule is not run. Each is long-running, and what it
# exercises runs elsewhere: `readrate worker --burst` wherever the README has it, the test suites
# under `make test`, the benchmarks in tests/integration/test_bench.py (`bench --quick`).
LONG_RUNNING = (
    (re.compile(r"^make\b"), "make targets set up .venv and run the demo, the test suites or the benchmarks "
                             "(minutes each); `make test` is what runs this test"),
    (re.compile(r"^(\S*/)?python3? -m bench\b"), "the benchmark suite takes minutes; "
                                                  "tests/integration/test_bench.py runs `bench --quick`"),
    (re.compile(r"^readrate worker\b(?!.*\s--burst\b)"), "a worker without --burst runs until it is stopped; "
                                                         "`readrate worker --burst` runs wherever the README has it"),
    (re.compile(r"^readrate serve\b"), "the collector runs until it is stopped; tests/integration/test_collector.py "
                                       "and tests/browser run it"),
)


@dataclass(frozen=True)
class Block:
    """One fenced code block of the README."""

    language: str
    line: int            # README line of the block's first code line (1-based)
    code: str
    name: str | None     # from `<!-- example: NAME -->`
    not_run: str | None  # the reason from `<!-- not run: REASON -->`

    @property
    def runs(self) -> bool:
        return self.language in RUN_LANGUAGES and self.not_run is None

    @property
    def id(self) -> str:
        return self.name or f"{self.language or 'plain'}-line-{self.line}"


def parse_blocks(text: str) -> list[Block]:
    """Every fenced block in `text`, with the marker comment on the line before it (blank lines skipped)."""
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        marker = _marker_before(lines, i)
        end = i + 1
        while end < len(lines) and not lines[end].startswith("```"):
            end += 1
        if end == len(lines):
            raise ValueError(f"README line {i + 1}: a code block is opened and never closed")
        kind, value = marker or (None, None)
        blocks.append(Block(language=fence.group(1), line=i + 2, code="\n".join(lines[i + 1:end]) + "\n",
                            name=value if kind == "example" else None,
                            not_run=value if kind == "not run" else None))
        i = end + 1
    return blocks


def _marker_before(lines: list[str], fence_index: int) -> tuple[str, str] | None:
    j = fence_index - 1
    while j >= 0 and not lines[j].strip():
        j -= 1
    found = _MARKER.match(lines[j]) if j >= 0 else None
    return (found.group(1), found.group(2)) if found else None


def read_blocks(path: Path = README) -> list[Block]:
    return parse_blocks(path.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class ShellPlan:
    """A shell example as it runs: the script, and the commands left out with the rule that left them."""

    script: str
    ran: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...]


def bare(command: str) -> str:
    """The command on one line, without its trailing comment."""
    return _TRAILING_COMMENT.sub("", command.replace("\\\n", " ")).strip()


def long_running(command: str) -> str | None:
    """Why `command` is not run, or None when it runs."""
    for rule, why in LONG_RUNNING:
        if rule.search(bare(command)):
            return why
    return None


def shell_commands(code: str) -> list[tuple[str, bool]]:
    """The example split into (text, is_command): a command keeps its `\\` continuations and here-document."""
    out: list[tuple[str, bool]] = []
    lines = code.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip() or line.lstrip().startswith("#"):
            out.append((line, False))
            i += 1
            continue
        command = [line]
        while command[-1].endswith("\\") and i + 1 < len(lines):
            i += 1
            command.append(lines[i])
        heredoc = _HEREDOC.search("\n".join(command))
        if heredoc:
            terminator = heredoc.group(2)
            while i + 1 < len(lines):
                i += 1
                command.append(lines[i])
                if lines[i].strip() == terminator:
                    break
        out.append(("\n".join(command), True))
        i += 1
    return out


def plan_shell(code: str) -> ShellPlan:
    """The script to run for a shell example: long-running commands become comments saying why."""
    script, ran, skipped = [], [], []
    for text, is_command in shell_commands(code):
        why = long_running(text) if is_command else None
        if why:
            skipped.append((text, why))
            script.extend(f"# not run ({why}): {part}" for part in text.splitlines())
            continue
        if is_command:
            ran.append(text)
        script.append(text)
    return ShellPlan("\n".join(script) + "\n", tuple(ran), tuple(skipped))
