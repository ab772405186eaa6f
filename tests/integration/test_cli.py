"""The `readrate` CLI through real processes: help, usage errors (2), servers unreachable (3), the pipeline.

Exit codes are the DESIGN.md contract: 0 ok, 1 failure, 2 bad usage, 3 Redis or the database unreachable.
"""

from __future__ import annotations

from dataclasses import replace

import csv
import io
import json
import sqlite3

import click
import pytest
from conftest import REDIS_URL
from helpers import run_cli

from readrate.events.settings import Settings
from readrate.reports.cli import cli
from readrate.reports.localredis import free_port

TOP_KEYS = ["rank", "article_id", "title", "reads", "votes", "rating_avg", "score"]


def command_paths(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = []
    for name, command in sorted(group.commands.items()):
        paths.append((*path, name))
        if isinstance(command, click.Group):
            paths.extend(command_paths(command, (*path, name)))
    return paths


COMMANDS = command_paths(cli)


def resolve(path: tuple[str, ...]) -> click.Command:
    command = cli
    for name in path:
        command = command.commands[name]
    return command


@pytest.fixture
def sq(prefix, sqlite_url):
    """Settings on SQLite only, for tests where the database kind does not matter."""
    return Settings.from_env({}, redis_url=REDIS_URL, database_url=sqlite_url, prefix=prefix)


def ok(settings, *args, **env) -> str:
    result = run_cli(settings, *args, **env)
    assert result.returncode == 0, f"readrate {' '.join(args)} exited {result.returncode}: {result.stderr}"
    return result.stdout


def top(settings, *args) -> list[dict]:
    return json.loads(ok(settings, "report", "top", "--format", "json", *args))


def stream_total(redis, settings) -> int:
    return sum(redis.xlen(settings.keys.stream(s)) for s in range(settings.shards))


# -- help ----------------------------------------------------------------------


def test_the_commands_of_the_issue_are_all_there():
    assert {("demo",), ("worker",), ("emit", "read"), ("emit", "vote"), ("import",), ("db", "upgrade"),
            ("report", "top")} <= set(COMMANDS)


@pytest.mark.parametrize("path", [(), *COMMANDS], ids=lambda p: " ".join(p) or "readrate")
def test_help_of_every_command_exits_0_with_a_description(sq, path):
    result = run_cli(sq, *path, "--help")

    assert result.returncode == 0, result.stderr
    usage, _, rest = result.stdout.partition("\n")
    assert usage.startswith(f"Usage: readrate {' '.join(path)}".rstrip())
    description = rest.split("Options:")[0]
    assert len(description.split()) >= 2, f"no description in: {result.stdout}"


@pytest.mark.parametrize("path", [(), *(p for p in COMMANDS if isinstance(resolve(p), click.Group))],
                         ids=lambda p: " ".join(p) or "readrate")
def test_a_group_lists_each_subcommand_with_a_short_description(sq, path):
    stdout = ok(sq, *path, "--help")

    listed = stdout.split("Commands:")[1].strip().splitlines()
    assert listed
    for line in listed:
        assert len(line.split()) >= 3, f"subcommand without a description: {line!r}"


def test_every_option_of_every_command_has_a_help_sentence():
    missing = [(path, o.name) for path in [(), *COMMANDS] for o in resolve(path).params
               if isinstance(o, click.Option) and not o.help]
    assert missing == []


# -- bad usage: exit 2, quoting the bad value --------------------------------------


@pytest.mark.parametrize(
    ("args", "env", "quoted"),
    [
        (("report", "top", "--by", "nope"), {}, "'nope'"),
        (("report", "top", "--format", "xml"), {}, "'xml'"),
        (("report", "top", "--limit", "-1"), {}, "-1"),
        (("emit", "vote", "A", "7", "--voter", "x"), {}, "'7'"),
        (("emit", "vote", "A", "4.3", "--voter", "x"), {}, "'4.3'"),
        (("emit", "vote", "A", "NaN", "--voter", "x"), {}, "'NaN'"),
        (("emit", "read", "A", "--at", "yesterday"), {}, "'yesterday'"),
        (("emit", "read", "x" * 129), {}, "129 characters"),
        (("emit", "read", "A"), {"READRATE_SHARDS": "abc"}, "'abc'"),
        (("emit", "read", "A"), {"READRATE_SHARDS": "0"}, "0"),
        (("emit", "read", "A"), {"READRATE_RATING_SCALE": "stars"}, "'stars'"),
        (("emit", "read", "A"), {"REDIS_URL": "localhost:6379"}, "'localhost:6379'"),
        (("import", "-", "--map", "title=name"), {}, "'title=name'"),
        (("report", "top"), {"DATABASE_URL": "mysql://db/readrate"}, "'mysql'"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, tuple) else None,
)
def test_bad_usage_exits_2_quoting_the_bad_value(sq, args, env, quoted):
    result = run_cli(sq, *args, **env)

    assert result.returncode == 2, result.stderr
    assert quoted in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_a_refused_vote_says_which_ratings_are_accepted(sq):
    result = run_cli(sq, "emit", "vote", "A", "7", "--voter", "x")

    assert "1, 2, 3, 4, 5" in result.stderr


def test_a_refused_emit_writes_nothing_to_redis(sq, redis):
    run_cli(sq, "emit", "vote", "A", "7", "--voter", "x")
    run_cli(sq, "emit", "read", "")

    assert stream_total(redis, sq) == 0


def test_emit_read_and_vote_say_in_a_sentence_what_was_emitted(sq, redis):
    read = run_cli(sq, "emit", "read", "A", "--visitor", "v1", "--at", "2025-06-01T12:00:00Z")
    vote = run_cli(sq, "emit", "vote", "A", "4", "--voter", "u1", "--at", "1748779200000")
    anonymous = run_cli(sq, "emit", "read", "B", "--at", "2025-06-01T14:30:00.250+02:00")

    assert (read.returncode, vote.returncode, anonymous.returncode) == (0, 0, 0), read.stderr + vote.stderr
    assert read.stderr == "emitted a read of 'A' by visitor 'v1' at 2025-06-01 12:00:00.000 UTC\n"
    assert vote.stderr == "emitted a vote of 4 on 'A' by voter 'u1' at 2025-06-01 12:00:00.000 UTC\n"
    assert anonymous.stderr == "emitted a read of 'B' at 2025-06-01 12:30:00.250 UTC\n"
    assert read.stdout == vote.stdout == "", "diagnostics go to stderr, never into data"
    assert stream_total(redis, sq) == 3


def test_a_half_star_vote_is_said_with_its_half(sq):
    half = replace(sq, rating_scale=sq.rating_scale.parse("0.5-5/0.5"))

    result = run_cli(half, "emit", "vote", "A", "4.5", "--voter", "u1", "--at", "2025-06-01")

    assert result.stderr == "emitted a vote of 4.5 on 'A' by voter 'u1' at 2025-06-01 00:00:00.000 UTC\n"


def test_emit_refuses_a_bidi_override_in_an_article_id_or_a_visitor_with_exit_2(sq, redis):
    article = run_cli(sq, "emit", "read", "post\u202e-4")
    visitor = run_cli(sq, "emit", "read", "post-4", "--visitor", "v\u2067")

    assert (article.returncode, visitor.returncode) == (2, 2)
    assert "article id 'post\\u202e-4' contains the bidi-override character '\\u202e'" in article.stderr
    assert "visitor 'v\\u2067' contains the bidi-override character" in visitor.stderr
    assert stream_total(redis, sq) == 0


def test_import_counts_one_event_and_one_bad_line_in_the_singular(sq):
    lines = "kind,article,at\nread,A,1748772000000\nclick,A,1748772000000\n"

    result = run_cli(sq, "import", "-", input=lines)

    assert result.returncode == 1
    assert "imported 1 event in " in result.stderr
    assert "; 1 bad line skipped" in result.stderr


@pytest.mark.parametrize("args", [("emit", "vote", "A", "4"), ("nosuch",), ("report", "top", "--nope")])
def test_missing_or_unknown_arguments_exit_2(sq, args):
    assert run_cli(sq, *args).returncode == 2


# -- servers unreachable: exit 3 ---------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [("emit", "read", "A"), ("emit", "vote", "A", "4", "--voter", "u"), ("worker", "--burst")],
    ids=" ".join,
)
def test_exit_code_is_3_when_redis_is_unreachable(sq, args):
    result = run_cli(sq, *args, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", timeout=120)

    assert result.returncode == 3, result.stderr
    assert "Redis" in result.stderr
    assert "Traceback" not in result.stderr


def test_import_exits_3_when_redis_is_unreachable(sq):
    result = run_cli(sq, "import", "-", input="kind,article,at\nread,A,5\n",
                     REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")

    assert result.returncode == 3, result.stderr


@pytest.mark.parametrize("args", [("report", "top"), ("db", "upgrade")], ids=" ".join)
def test_exit_code_is_3_when_the_database_is_unreachable(sq, args):
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/readrate"

    result = run_cli(sq, *args, DATABASE_URL=url, timeout=120)

    assert result.returncode == 3, result.stderr
    assert "unreachable" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_postgresql_database_that_does_not_exist_is_reported_without_a_traceback(sq):
    result = run_cli(sq, "report", "top", DATABASE_URL="postgresql://postgres@127.0.0.1:5432/rrt_no_such_database")

    assert result.returncode == 3, result.stderr
    assert "rrt_no_such_database" in result.stderr
    assert "Traceback" not in result.stderr


# -- the database ---------------------------------------------------------------


def test_db_upgrade_works_twice(settings):
    first = run_cli(settings, "db", "upgrade")
    second = run_cli(settings, "db", "upgrade")

    assert (first.returncode, second.returncode) == (0, 0), first.stderr + second.stderr
    assert "upgraded" in first.stderr
    assert "already at revision" in second.stderr


def test_report_top_on_an_empty_database_exits_0_with_a_clear_message(sq):
    ok(sq, "db", "upgrade")

    result = run_cli(sq, "report", "top")

    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert "no articles" in result.stderr
    assert "readrate worker" in result.stderr, "the message says what to do"


@pytest.mark.parametrize(("fmt", "empty"), [("json", []), ("csv", [TOP_KEYS])])
def test_report_top_on_an_empty_database_gives_empty_data_to_scripts(sq, fmt, empty):
    ok(sq, "db", "upgrade")

    stdout = ok(sq, "report", "top", "--format", fmt)

    assert (json.loads(stdout) if fmt == "json" else list(csv.reader(io.StringIO(stdout)))) == empty


def test_report_top_on_a_database_never_upgraded_says_there_is_nothing_yet_without_a_traceback(settings):
    if settings.database_url.startswith("sqlite"):
        sqlite3.connect(settings.database_url.removeprefix("sqlite:///")).close()  # an empty file, no tables

    result = run_cli(settings, "report", "top")

    assert result.returncode == 0, result.stderr
    assert "no articles" in result.stderr
    assert "readrate worker" in result.stderr
    assert "Traceback" not in result.stderr


def test_report_top_on_a_sqlite_file_that_does_not_exist_exits_3_naming_it_and_creates_nothing(sq, tmp_path):
    path = tmp_path / "typo.db"

    result = run_cli(sq, "report", "top", DATABASE_URL=f"sqlite:///{path}")

    assert result.returncode == 3, result.stderr
    assert f"no database at {str(path)!r}" in result.stderr
    assert not path.exists()


# -- the pipeline through the CLI --------------------------------------------------


def emit_sample(settings) -> None:
    ok(settings, "emit", "read", "A", "--visitor", "v1")
    ok(settings, "emit", "read", "A", "--visitor", "v2", "--at", "2025-06-01T12:00:00Z")
    ok(settings, "emit", "read", "A")
    ok(settings, "emit", "read", "B", "--at", "1748779200000")
    ok(settings, "emit", "vote", "A", "4", "--voter", "u1", "--at", "2025-06-01T00:00:00Z")
    ok(settings, "emit", "vote", "A", "2", "--voter", "u2")
    ok(settings, "emit", "vote", "B", "5", "--voter", "u1")
    ok(settings, "emit", "vote", "A", "5", "--voter", "u1", "--at", "2025-06-02T00:00:00Z")  # u1 re-votes A


# The same events as emit_sample, in one `import` process (the votes carry their times here).
SAMPLE_CSV = (
    "kind,article,at,visitor,rating\n"
    "read,A,1748779200000,v1,\n"
    "read,A,2025-06-01T12:00:00Z,v2,\n"
    "read,A,1748779200000,,\n"
    "read,B,1748779200000,,\n"
    "vote,A,2025-06-01T00:00:00Z,u1,4\n"
    "vote,A,2025-06-01T00:00:00Z,u2,2\n"
    "vote,B,2025-06-01T00:00:00Z,u1,5\n"
    "vote,A,2025-06-02T00:00:00Z,u1,5\n"
)


def load_sample(settings) -> None:
    result = run_cli(settings, "import", "-", input=SAMPLE_CSV)
    assert result.returncode == 0, result.stderr
    ok(settings, "worker", "--burst")


def test_emitted_reads_and_votes_are_counted_by_a_burst_worker_and_reported(settings, redis):
    emit_sample(settings)
    assert stream_total(redis, settings) == 8

    worker = run_cli(settings, "worker", "--burst")
    assert worker.returncode == 0, worker.stderr

    rows = top(settings)
    assert [list(r) for r in rows] == [TOP_KEYS, TOP_KEYS]
    keys = ("rank", "article_id", "reads", "votes", "rating_avg", "score")
    assert [tuple(r[k] for k in keys) for r in rows] == [
        (1, "A", 3, 2, 3.5, 3.0),
        (2, "B", 1, 1, 5.0, 1.0),
    ]
    assert stream_total(redis, settings) == 0, "applied entries are trimmed"


def test_report_top_ranks_by_votes_and_by_bayesian_rating(settings):
    load_sample(settings)

    by_votes = top(settings, "--by", "votes")
    assert [(r["article_id"], r["score"]) for r in by_votes] == [("A", 2.0), ("B", 1.0)]

    # C = (5 + 2 + 5) / 3 = 4 and m = 10: A = (40 + 7) / 12, B = (40 + 5) / 11.
    by_rating = top(settings, "--by", "rating")
    assert [r["article_id"] for r in by_rating] == ["B", "A"]
    assert by_rating[0]["score"] == pytest.approx(45 / 11)
    assert by_rating[1]["score"] == pytest.approx(47 / 12)

    assert [r["article_id"] for r in top(settings, "--by", "rating", "--min-votes", "2")] == ["A"]
    assert [r["article_id"] for r in top(settings, "--limit", "1")] == ["A"]
    prior_0 = top(settings, "--by", "rating", "--prior-votes", "0")
    assert [(r["article_id"], r["score"]) for r in prior_0] == [("B", 5.0), ("A", 3.5)]


def test_every_output_format_parses_back_to_the_same_rows(sq):
    load_sample(sq)
    rows = top(sq)

    as_csv = list(csv.DictReader(io.StringIO(ok(sq, "report", "top", "--format", "csv"))))
    assert [list(r) for r in as_csv] == [TOP_KEYS] * len(rows)
    assert [(r["article_id"], int(r["reads"]), int(r["votes"]), float(r["rating_avg"])) for r in as_csv] == [
        (r["article_id"], r["reads"], r["votes"], r["rating_avg"]) for r in rows
    ]

    markdown = ok(sq, "report", "top", "--format", "markdown").splitlines()
    table = [line for line in markdown if line.startswith("|")]
    assert table[1].replace("|", "").replace(":", "").replace("-", "").strip() == ""
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in table[2:]]
    assert [(c[0], c[1], int(c[3]), int(c[4]), float(c[5])) for c in cells] == [
        (str(r["rank"]), r["article_id"], r["reads"], r["votes"], r["rating_avg"]) for r in rows
    ]

    text = ok(sq, "report", "top", "--format", "table")
    assert text.index(" A ") < text.index(" B ")


# -- import ------------------------------------------------------------------------

CSV_FILE = (
    "kind,article,at,visitor,rating\n"  # 1
    "read,A,2025-06-01T10:00:00Z,v1,\n"  # 2
    "read,A,1748772000000,,\n"  # 3
    "vote,A,1748772000000,u1,9\n"  # 4 bad: rating
    "vote,A,1748772000000,u1,4\n"  # 5
    "read,,1748772000000,,\n"  # 6 bad: no article
    "read,B,1748772000000\n"  # 7 bad: columns
    "vote,B,1748772000000,,3\n"  # 8 bad: no voter
    "read,B,2025-06-01,,\n"  # 9
)
JSONL_FILE = (
    '{"kind": "read", "article": "A", "at": 1748772000000}\n'  # 1
    "{broken\n"  # 2 bad
    '{"kind": "vote", "article": "A", "at": "2025-06-01T10:00:00Z", "visitor": "u1", "rating": 4}\n'  # 3
    '{"kind": "click", "article": "A", "at": 1748772000000}\n'  # 4 bad
    "\n"  # 5 blank
    '{"kind": "read", "article": "B", "at": 1748772000000, "visitor": "v"}\n'  # 6
    '{"kind": "read", "article": "B", "at": 99999999999999}\n'  # 7 bad: future
)


@pytest.mark.parametrize(("name", "content", "bad_lines"), [
    ("events.csv", CSV_FILE, [4, 6, 7, 8]),
    ("events.jsonl", JSONL_FILE, [2, 4, 7]),
])
def test_import_reports_bad_lines_by_number_exits_1_and_counts_the_good_ones(
    settings, tmp_path, name, content, bad_lines
):
    path = tmp_path / name
    path.write_text(content)

    result = run_cli(settings, "import", str(path))

    assert result.returncode == 1, result.stderr
    reported = sorted(int(line.split()[1].rstrip(":")) for line in result.stderr.splitlines()
                      if line.startswith("line "))
    assert reported == bad_lines
    ok(settings, "worker", "--burst")
    counts = {r["article_id"]: (r["reads"], r["votes"]) for r in top(settings)}
    assert counts == {"A": (2, 1), "B": (1, 0)} if name.endswith("csv") else {"A": (1, 1), "B": (1, 0)}


def test_import_of_a_clean_file_from_stdin_exits_0(sq):
    result = run_cli(sq, "import", "-", input="kind,article,at,visitor,rating\nread,A,5,,\nvote,A,6,u,3\n")

    assert result.returncode == 0, result.stderr
    assert "imported 2 events" in result.stderr
    ok(sq, "worker", "--burst")
    assert [(r["article_id"], r["reads"], r["votes"]) for r in top(sq)] == [("A", 1, 1)]


def test_import_of_movielens_style_ratings_with_mapped_columns_on_half_stars(sq, tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_text("userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,4.5,964981247\n2,1,0.5,964982224\n")
    half = replace(sq, rating_scale=sq.rating_scale.parse("0.5-5/0.5"))

    ok(half, "import", str(path), "--kind", "vote", "--map", "article=movieId", "--map", "visitor=userId",
       "--map", "at=timestamp", "--time-unit", "s")
    ok(half, "worker", "--burst")

    rows = {r["article_id"]: (r["votes"], r["rating_avg"]) for r in top(half, "--by", "votes")}
    assert rows == {"1": (2, 2.25), "3": (1, 4.5)}


def test_importing_a_file_that_does_not_exist_exits_2_naming_it(sq, tmp_path):
    result = run_cli(sq, "import", str(tmp_path / "missing.csv"))

    assert result.returncode == 2
    assert "missing.csv" in result.stderr
