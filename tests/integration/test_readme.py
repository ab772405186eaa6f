"""The README runs: every ```python and ```sh example in README.md runs here, as written.

Each example runs in a directory of its own (the test's tmp_path) with the test's own Redis
key prefix and SQLite database, through the venv's real `python` and `readrate`
(REDIS_URL, DATABASE_URL and READRATE_PREFIX set, .venv/bin first on PATH). A Python example
runs in a subprocess; a shell example runs in bash with `-e -o pipefail`, so a command that
fails fails the test, and its trace (`-x`) shows which one. How blocks are found and marked,
and which long-running commands are left out, is in tests/readme_examples.py.

What the README leaves implicit is in RECIPES, keyed by the block's `<!-- example: NAME -->`
marker: sample files (SAMPLES), setup commands that make the data an example presumes,
code before the example (a web framework's `request`), and checks of what the README says it
prints or counts. The example's own code is never changed: if it stops running as written,
its test fails.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import REDIS_URL
from helpers import counters
from readme_examples import (README, RUN_LANGUAGES, TEXT_LANGUAGES, Block, bare, long_running, plan_shell,
                             read_blocks)
from sqlalchemy import func, select

from readrate.events.tokens import sign
from readrate.reports.localredis import RedisServer
from readrate.reports.web.example import SNIPPET
from readrate.workers.db import make_engine
from readrate.workers.schema import articles, rejected_events

VENV_BIN = Path(sys.prefix) / "bin"
BLOCKS = read_blocks()
EXAMPLE_TIMEOUT_S = 300
# Examples not run at all: each says why in its marker. Few, and they stay few.
MAX_NOT_RUN = 2

# -- sample files the examples read (small stand-ins for MovieLens' ratings.csv and movies.csv) ----

RATINGS_CSV = """\
userId,movieId,rating,timestamp
1,1,4.0,1404208800
2,1,5.0,1420192800
3,1,4.5,1425031200
1,2,3.5,1420110000
2,2,2.0,1431079200
4,11,0.5,1262350800
"""

MOVIES_CSV = """\
movieId,title,genres
1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy
2,Jumanji (1995),Adventure|Children|Fantasy
11,"American President, The (1995)",Comedy|Drama|Romance
"""


def page_events_csv() -> str:
    """article-42 read 563 times with 12 votes averaging 4.25 (the page example's numbers), and two more articles."""
    rows = ["kind,article,at,visitor,rating"]
    rows += [f"read,article-42,{1_717_200_000_000 + i * 60_000},v-{i % 97}," for i in range(563)]
    rows += [f"vote,article-42,1717300000000,user-{i},{r}" for i, r in enumerate([4] * 9 + [5] * 3)]
    rows += ["read,article-1,1717200000000,v-1,", "vote,article-3,1717200000000,user-1,3"]
    return "\n".join(rows) + "\n"


SAMPLES: dict[str, Callable[[], str]] = {
    "ratings.csv": lambda: RATINGS_CSV,
    "movies.csv": lambda: MOVIES_CSV,
    "page-events.csv": page_events_csv,
}


def ratings_tally() -> dict[str, tuple[int, int, float]]:
    """What the sample ratings must count to, tallied straight from the CSV (no readrate code)."""
    votes: Counter = Counter()
    sums: defaultdict = defaultdict(float)
    for row in csv.DictReader(io.StringIO(RATINGS_CSV)):
        votes[row["movieId"]] += 1
        sums[row["movieId"]] += float(row["rating"])
    return {movie: (0, n, sums[movie]) for movie, n in votes.items()}


# -- running an example ----------------------------------------------------------------------


@dataclass
class Run:
    """One example's directory, environment and output; checks call `readrate` and read the database through it."""

    cwd: Path
    env: dict[str, str]
    database_url: str
    stdout: str = ""
    stderr: str = ""

    def execute(self, command: list[str], what: str) -> subprocess.CompletedProcess:
        result = subprocess.run(command, cwd=self.cwd, env=self.env, capture_output=True, text=True,
                                timeout=EXAMPLE_TIMEOUT_S)
        assert result.returncode == 0, failure(what, result)
        return result

    def sh(self, script: str, what: str) -> subprocess.CompletedProcess:
        return self.execute(["bash", "-x", "-e", "-o", "pipefail", "-c", script], what)

    def readrate(self, *args: str) -> str:
        result = subprocess.run([str(VENV_BIN / "readrate"), *args], cwd=self.cwd, env=self.env,
                                capture_output=True, text=True, timeout=EXAMPLE_TIMEOUT_S)
        assert result.returncode == 0, failure(f"readrate {' '.join(args)}", result)
        return result.stdout

    def counters(self) -> dict[str, tuple[int, int, float]]:
        engine = make_engine(self.database_url)
        try:
            return counters(engine)
        finally:
            engine.dispose()

    def rows(self, statement) -> list:
        engine = make_engine(self.database_url)
        try:
            with engine.connect() as conn:
                return conn.execute(statement).all()
        finally:
            engine.dispose()


def failure(what: str, result: subprocess.CompletedProcess) -> str:
    return (f"{what} exited {result.returncode}\n--- stdout (last 3000 characters) ---\n{result.stdout[-3000:]}"
            f"\n--- stderr (last 3000 characters) ---\n{result.stderr[-3000:]}")


@dataclass(frozen=True)
class Recipe:
    """What the README leaves implicit around one example, and what the test checks after it runs."""

    files: tuple[str, ...] = ()           # SAMPLES written into the example's directory first
    setup: str = ""                       # shell commands making the data the example presumes
    setup_blocks: tuple[str, ...] = ()    # README examples it follows ("imported as above"), run first, same shell
    before: str = ""                      # code put before the example, in its language
    after: str = ""                       # Python run after a Python example, in its namespace (asserts)
    env: dict[str, str] = field(default_factory=dict)
    private_redis: bool = False           # a redis-server of its own, for an example that names keys verbatim
    check: Callable[[Run], None] | None = None


def check_emit(run: Run) -> None:
    run.readrate("worker", "--burst")
    assert run.counters() == {"article-42": (1, 1, 4.0), "article-1": (1, 0, 0.0), "article-2": (0, 1, 5.0)}


def check_wire(run: Run) -> None:
    shards, shard, *stream_ids = run.stdout.split()
    assert shards == "4", run.stdout  # the installation record's shard count
    assert shard == "2", run.stdout  # the README says: crc32("article-42") mod 4 = 2
    assert len(stream_ids) == 2 and all(re.fullmatch(r"\d+-\d+", i) for i in stream_ids), run.stdout
    run.readrate("worker", "--burst")
    assert run.counters() == {"article-42": (1, 1, 4.0)}


def check_php(run: Run) -> None:
    assert run.stdout == "" and "Warning" not in run.stderr, run.stderr
    run.readrate("worker", "--burst")
    assert run.counters() == {"article-42": (1, 1, 4.0)}


def check_workers(run: Run) -> None:
    assert "drained 1 event " in run.stderr, run.stderr
    assert run.counters() == {"article-42": (1, 0, 0.0)}


def check_cli(run: Run) -> None:
    assert run.stdout.startswith("Usage: readrate [OPTIONS] COMMAND [ARGS]..."), run.stdout[:200]
    assert "Usage: readrate report top [OPTIONS]" in run.stdout


def check_import(run: Run) -> None:
    assert "imported 3 events" in run.stderr, run.stderr
    assert run.counters() == {"article-42": (2, 1, 4.0)}  # the README says: 2 reads, 1 vote
    assert "article-42" in run.stdout and "2024-06-01" in run.stdout


def check_import_movielens(run: Run) -> None:
    # Every half star counted, none refused: the scale is the same for the import and the workers.
    refused = run.rows(select(rejected_events.c.reason))
    assert not refused, f"{len(refused)} sample ratings went to dead letters: {refused}"
    assert run.counters() == ratings_tally()


def check_articles(run: Run) -> None:
    stored = dict(run.rows(select(articles.c.article_id, articles.c.title)))
    expected = {r["movieId"]: r["title"] for r in csv.DictReader(io.StringIO(MOVIES_CSV))}
    assert stored == expected


def check_reports(run: Run) -> None:
    assert "Toy Story (1995)" in run.stdout
    assert "rank,article_id,title,reads,votes,rating_avg,score\n1,1,Toy Story (1995),0,3,4.5," in run.stdout
    article = json.loads(run.stdout[run.stdout.index("\n{") + 1:run.stdout.rindex("}") + 1])
    # In 2015 movie 1 got two of its three votes (4.5 on 2015-02-27, and 5.0 on 2015-01-02).
    assert (article["article_id"], article["title"], article["votes"]) == ("1", "Toy Story (1995)", 2)
    assert article["rating_avg"] == pytest.approx(4.75)
    summary = (run.cwd / "summary.md").read_text()
    assert "Toy Story (1995)" in summary and "Jumanji (1995)" in summary
    assert (run.cwd / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def check_status(run: Run) -> None:
    report = json.loads(run.stdout[run.stdout.index("\n{") + 1:])
    assert report["queue"] == run.env["READRATE_PREFIX"]
    assert report["backlog"] == 1 and report["dead_letters"] == 0


def check_dead(run: Run) -> None:
    assert "rating '4.5' is not on the scale 1-5" in run.stdout
    assert "replayed 1 dead letter" in run.stderr, run.stderr
    assert run.counters() == {"article-42": (0, 1, 4.5)}
    assert run.rows(select(func.count()).select_from(rejected_events)) == [(0,)]


def check_pseudonyms(run: Run) -> None:
    run.readrate("worker", "--burst")
    assert run.counters() == {"article-42": (0, 1, 4.0)}


VOTER_SECRET = "readme-voter-secret-0123456789"


def check_emit_rules(run: Run) -> None:
    run.readrate("worker", "--burst")
    assert run.counters() == {"article-42": (1, 0, 0.0)}
    dropped = json.loads(run.readrate("report", "dropped", "--since", "1d", "--format", "json"))
    assert (sum(day["bot"] for day in dropped), sum(day["repeat"] for day in dropped)) == (1, 1), dropped


def check_voter_token(run: Run) -> None:
    # The contract's token, computed here by readrate's own signer: both examples print the same string.
    assert run.stdout.split() == [sign("user-1001", VOTER_SECRET.encode())], run.stdout


def check_archive(run: Run) -> None:
    rebuilt = make_engine(f"sqlite:///{run.cwd / 'rebuilt.db'}")
    try:
        assert counters(rebuilt) == run.counters()
    finally:
        rebuilt.dispose()
    assert run.counters()["article-42"] == (563, 12, 51.0)
    assert "article-42" in run.stdout and "readers" in run.stdout  # the top list by readers
    assert list((run.cwd / "archive").glob("day=*/*.parquet"))


def check_moderation(run: Run) -> None:
    # page-events.csv: article-42 read 563 times; user-1 voted 4 on article-42 and 3 on article-3.
    # The reset was undone; the unvote stands.
    assert run.counters()["article-42"] == (563, 11, 47.0)
    assert run.counters()["article-3"] == (0, 0, 0.0)
    log = json.loads(run.readrate("moderate", "log", "--format", "json"))
    assert [(row["action"], row["state"]) for row in log] == [
        ("undo", "applied"), ("unvote", "applied"), ("reset", "undone by 3")], log


def check_archive_duckdb(run: Run) -> None:
    # page-events.csv: 564 reads by 97 visitors, 13 votes by 12 voters
    assert re.search(r"read\s*│\s*564\s*│\s*97", run.stdout) and re.search(r"vote\s*│\s*13\s*│\s*12", run.stdout), \
        run.stdout


RECIPES: dict[str, Recipe] = {
    "emit": Recipe(
        setup="readrate db upgrade",  # the installation exists, as the README's text says it must
        after="assert (emitter.stats.emitted, emitter.stats.failed, emitter.stats.rejected) == (4, 0, 0), emitter.stats",
        check=check_emit,
    ),
    # The example names the stream `readrate:events:2` (the default prefix) and talks to the
    # default Redis, so it gets a redis-server of its own, and redis-cli is pointed at it.
    "wire": Recipe(
        private_redis=True,
        before='redis-cli() { command redis-cli -u "$REDIS_URL" "$@"; }',
        check=check_wire,
    ),
    # A PHP page, once the installation exists: the test's own prefix, on the shared Redis.
    "php": Recipe(setup="readrate db upgrade", check=check_php),
    "workers": Recipe(setup="readrate emit read article-42", check=check_workers),
    "cli": Recipe(check=check_cli),
    "import": Recipe(check=check_import),
    "import-movielens": Recipe(files=("ratings.csv",), check=check_import_movielens),
    "articles": Recipe(files=("movies.csv",), check=check_articles),
    "reports": Recipe(files=("ratings.csv", "movies.csv"), setup_blocks=("import-movielens", "articles"),
                      check=check_reports),
    # An installation that has run (its database exists) with one read not yet counted.
    "status": Recipe(setup="readrate db upgrade\nreadrate emit read article-42", check=check_status),
    # "A half-star vote a PHP page sent while the installation was on whole stars": a plain
    # XADD to the shard of article-42 (crc32 mod 4 = 2), which the worker refuses.
    "dead": Recipe(
        setup="readrate db upgrade\n"
              "redis-cli -u \"$REDIS_URL\" XADD \"{$READRATE_PREFIX:2}:events\" '*' k vote a article-42 "
              "t \"$(date +%s%3N)\" v user-1001 r 4.5\n"
              "readrate worker --burst",
        check=check_dead,
    ),
    "page-counters": Recipe(
        files=("page-events.csv",),
        setup="readrate import page-events.csv\nreadrate worker --burst",
        after="""
assert (c.reads, c.votes, c.rating_avg) == (563, 12, 4.25), c
assert c.reads_text == "Read 563 times" and c.votes_text == "Rate this item (12 votes)", c
assert list(listing) == ["article-1", "article-2", "article-3"], listing
assert (listing["article-1"].reads_text, listing["article-2"].reads_text) == ("Read 1 time", "Read 0 times")
assert listing["article-2"].rating_avg is None and listing["article-3"].votes_text == "Rate this item (1 vote)"
""",
    ),
    # A web framework's request (Flask's spelling) and the emitter from the example above.
    "pseudonyms": Recipe(
        setup="readrate db upgrade",
        env={"READRATE_ID_SECRET": "readme-test-secret-0123456789abcdef"},
        before="""
from types import SimpleNamespace
from readrate.events import Emitter, Settings

emitter = Emitter.from_settings(Settings.from_env())
request = SimpleNamespace(remote_addr="203.0.113.7", headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64)"})
""",
        after="""
import re
assert re.fullmatch(r"h1-[A-Za-z0-9_-]{43}", voter), voter
assert ids.voter_id("::ffff:203.0.113.7", "Mozilla/5.0 (X11; Linux x86_64)") == voter  # the same reader
assert emitter.stats.emitted == 1, emitter.stats
""",
        check=check_pseudonyms,
    ),
    "token-python": Recipe(env={"READRATE_VOTER_SECRET": VOTER_SECRET}, check=check_voter_token),
    "token-php": Recipe(env={"READRATE_VOTER_SECRET": VOTER_SECRET}, check=check_voter_token),
    # The emitter of "Emitting from a Python page", and a request: a browser's view, then a crawler's.
    "archive": Recipe(files=("page-events.csv",), check=check_archive),
    # A worker runs meanwhile, so --wait sees each operation applied.
    "moderation": Recipe(files=("page-events.csv",), setup="readrate import page-events.csv\nreadrate worker --burst",
                         before="readrate worker > worker.log 2>&1 &\ntrap 'kill %1; wait' EXIT",
                         check=check_moderation),
    "archive-duckdb": Recipe(
        files=("page-events.csv",),
        setup="export READRATE_ARCHIVE=./archive\nreadrate import page-events.csv\nreadrate worker --burst",
        check=check_archive_duckdb),
    "rules": Recipe(
        setup="readrate db upgrade",
        before="""
from types import SimpleNamespace
from readrate.events import Emitter, Settings

emitter = Emitter.from_settings(Settings.from_env())
request = SimpleNamespace(method="GET", cookies={"visitor": "v-9f2c"},
                          headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"})
""",
        after="""
assert (emitter.stats.emitted, emitter.stats.ignored) == (1, 0), emitter.stats
request.headers["User-Agent"] = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
emitter.read("article-42", visitor="v-crawler", user_agent=request.headers["User-Agent"])
request.headers["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"
emitter.read("article-42", visitor="v-9f2c", user_agent=request.headers["User-Agent"])  # a repeat
assert (emitter.stats.emitted, emitter.stats.ignored) == (1, 2), emitter.stats
""",
        check=check_emit_rules,
    ),
}


def example_env(prefix: str, database_url: str, redis_url: str, extra: dict[str, str]) -> dict[str, str]:
    """The environment a reader's shell would have: the venv first on PATH, readrate's variables and nothing else of ours."""
    env = {k: v for k, v in os.environ.items()
           if not (k.startswith("READRATE_") and not k.startswith("READRATE_TEST_"))
           and k not in ("REDIS_URL", "DATABASE_URL", "PYTHONPATH")}
    env.update(PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}", REDIS_URL=redis_url, DATABASE_URL=database_url,
               READRATE_PREFIX=prefix, **extra)
    return env


def python_script(block: Block, recipe: Recipe) -> str:
    """Setup code, then the README's block compiled as README.md (tracebacks show README lines), then the asserts."""
    padded = "\n" * (block.line - 1) + block.code
    return (f"{recipe.before}\n"
            f"exec(compile({padded!r}, {str(README)!r}, 'exec'), globals())\n"
            f"{recipe.after}\n")


def block_named(name: str) -> Block:
    found = [b for b in BLOCKS if b.name == name]
    assert len(found) == 1, f"README has {len(found)} examples named {name!r}"
    return found[0]


def shell_script(block: Block, recipe: Recipe) -> str:
    """The recipe's code and the examples this one follows (their output to stderr), then the example."""
    parts = [recipe.before]
    for name in recipe.setup_blocks:
        parts.append(f"{{\n{plan_shell(block_named(name).code).script}}} >&2")
    parts.append(plan_shell(block.code).script)
    return "\n".join(parts)


RUNNABLE = [b for b in BLOCKS if b.runs]


def php_with_redis() -> bool:
    if shutil.which("php") is None:
        return False
    modules = subprocess.run(["php", "-m"], capture_output=True, text=True, timeout=30).stdout.split()
    return "redis" in modules


@pytest.mark.parametrize("block", RUNNABLE, ids=[b.id for b in RUNNABLE])
def test_the_readme_example_runs_as_written(block: Block, tmp_path, prefix, sqlite_url):
    recipe = RECIPES.get(block.name or "", Recipe())
    if block.language == "php" and not php_with_redis():
        pytest.skip("PHP with the phpredis extension is not installed (.ci/run installs php-cli and php-redis)")
    if block.language == "sh":
        plan = plan_shell(block.code)
        if not plan.ran:
            reasons = dict.fromkeys(why for _, why in plan.skipped)
            pytest.skip(f"only long-running commands ({', '.join(bare(c) for c, _ in plan.skipped)}): "
                        + "; ".join(reasons))
    for name in recipe.files:
        (tmp_path / name).write_text(SAMPLES[name](), encoding="utf-8")

    server = None
    redis_url = REDIS_URL
    if recipe.private_redis:
        if shutil.which("redis-server") is None:
            pytest.skip("this example names its Redis keys verbatim and needs a redis-server of its own")
        server = RedisServer().start()
        redis_url = server.url
    env = example_env(prefix, sqlite_url, redis_url, recipe.env)
    if recipe.private_redis:
        del env["READRATE_PREFIX"]  # the example uses the default prefix, on a Redis nobody else uses
    run = Run(tmp_path, env, sqlite_url)
    try:
        if recipe.setup:
            run.sh(recipe.setup, f"setup of the README example at line {block.line}")
        what = f"the README example at line {block.line} ({block.id})"
        if block.language == "python":
            result = run.execute([str(VENV_BIN / "python"), "-c", python_script(block, recipe)], what)
        elif block.language == "php":
            script = tmp_path / "example.php"
            script.write_text(block.code, encoding="utf-8")
            result = run.execute(["php", str(script)], what)
        else:
            result = run.sh(shell_script(block, recipe), what)
        run.stdout, run.stderr = result.stdout, result.stderr
        if recipe.check:
            recipe.check(run)
    finally:
        if server is not None:
            server.stop()


# -- the README's blocks are all accounted for --------------------------------------------------


def test_every_readme_code_block_says_whether_it_is_an_example_or_text():
    unlabelled = [(b.line, b.language) for b in BLOCKS if b.language not in (*RUN_LANGUAGES, *TEXT_LANGUAGES)]
    assert not unlabelled, (f"README blocks at these lines need ```python or ```sh (examples, run by this test) "
                            f"or ```text (synopses, diagrams): {unlabelled}")


def test_every_example_recipe_names_a_readme_example_and_every_name_has_a_recipe():
    named = {b.name for b in BLOCKS if b.name}
    assert set(RECIPES) == named, (f"recipes for examples the README does not name: {set(RECIPES) - named}; "
                                   f"README examples named without a recipe: {named - set(RECIPES)}")
    for name, recipe in RECIPES.items():
        assert block_named(name).language in RUN_LANGUAGES
        assert all(block_named(n).language == "sh" for n in recipe.setup_blocks)


def test_the_examples_that_do_not_run_are_few_and_say_why():
    not_run = [b for b in BLOCKS if b.not_run is not None]
    assert all(len(b.not_run) > 10 for b in not_run), [(b.line, b.not_run) for b in not_run]
    assert len(not_run) <= MAX_NOT_RUN, f"more README examples left unrun than {MAX_NOT_RUN}: {not_run}"


def test_the_readme_runs_a_python_and_a_shell_example_at_least():
    assert {b.language for b in RUNNABLE} == {"python", "sh", "php"}
    assert sum(1 for b in RUNNABLE if b.language == "sh" and plan_shell(b.code).ran) >= 8


def test_only_long_running_commands_are_left_out_and_worker_burst_is_not():
    assert long_running("readrate worker            # runs until SIGTERM/Ctrl-C") is not None
    assert long_running("readrate worker --name w1") is not None
    assert long_running("make demo    # creates .venv") is not None
    assert long_running(".venv/bin/python -m bench --only lag") is not None
    assert long_running("readrate worker --burst    # drains every shard, then exits") is None
    assert long_running("readrate report top --by reads") is None
    plan = plan_shell("readrate worker\nreadrate worker --burst\nreadrate import ratings.csv \\\n    --kind vote\n")
    assert plan.ran == ("readrate worker --burst", "readrate import ratings.csv \\\n    --kind vote")
    assert [c for c, _ in plan.skipped] == ["readrate worker"]


def test_the_readme_stands_alone_and_names_the_installed_packages():
    text = README.read_text(encoding="utf-8")
    for outside in ("../shared", "DESIGN.md", "STYLE.md", "/work/"):
        assert outside not in text, f"the README points at {outside}; it must stand alone"
    # Old top-level names: the package installs only readrate.*.
    assert not re.search(r"^\s*(from|import) (events|workers|reports)\b", text, re.M)
    assert not re.search(r"(?<![\w.])(events|workers|reports)\.(privacy|page|drain)\b", text)
    for name in ("from readrate.events import", "python -m readrate.reports", "tests/unit", "tests/integration",
                 "tests/faults", "make check"):
        assert name in text


def test_the_readme_snippet_is_the_one_the_example_page_pastes():
    snippets = [b.code.strip() for b in BLOCKS if b.language == "html"]
    assert SNIPPET.format(script_url="https://stats.example.com/readrate.js", article_id="article-42") in snippets
