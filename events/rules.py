"""Counting rules: which page views count as reads, the same for every producer.

A page `Emitter` and the HTTP collector apply the same rules (DESIGN.md, "HTTP collector"):

- **bot**: a user agent on the maintained crawler list (the `crawlerdetect` package, which
  also knows headless browsers), or no user agent at all;
- **prefetch**: a prefetch, prerender or preview (`Sec-Purpose`, `Purpose`, `X-Purpose`,
  `X-Moz` headers) or a HEAD request: nobody saw the page;
- **repeat**: the same visitor read the same article less than the read interval ago. This is
  decided in Redis, in the script that XADDs the read, on the shard's own hash slot: two
  tabs racing cannot both count, and the decision costs no extra round trip;
- **excluded**: the site owner asked not to count a browser (the collector's opt-out cookie).

Every dropped event is counted per reason and UTC day in the hash
`{PREFIX:SHARD}:dropped:YYYY-MM-DD` of its article's shard, kept DROPPED_KEEP_DAYS days;
`dropped_counts()` sums them for `readrate report dropped` and `/metrics`.

`screen()` is pure; the commands are built here and sent by their producer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from functools import lru_cache

from redis import Redis
from redis.exceptions import NoScriptError

from .clock import MS_PER_DAY, day_date
from .errors import ConfigError
from .model import Read
from .transport import send
from .wire import Keys, encode_flat

BOT, PREFETCH, REPEAT, EXCLUDED = "bot", "prefetch", "repeat", "excluded"
REASONS = (BOT, PREFETCH, REPEAT, EXCLUDED)
# Long enough for "last quarter" reports; a day's hash per shard is a few dozen bytes.
DROPPED_KEEP_DAYS = 400
DEFAULT_READ_INTERVAL_MS = 30 * 60_000
MAX_READ_INTERVAL_MS = 365 * MS_PER_DAY
# Headers by which browsers announce a speculative load, and the words that mean one.
PURPOSE_HEADERS = ("sec-purpose", "purpose", "x-purpose", "x-moz")
_SPECULATIVE = ("prefetch", "prerender", "preview")

# Decided and counted in one step on the shard's slot: the read is stored only if the visitor's
# mark for this article was absent (SET NX), and a repeat is counted where it was refused.
# No allow-oom flag: on a full Redis the whole script is refused, so no mark is left without its read.
REPEAT_SCRIPT = """#!lua
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[1]) then
  return redis.call('XADD', KEYS[1], '*', unpack(ARGV, 4))
end
redis.call('HINCRBY', KEYS[3], 'repeat', 1)
redis.call('EXPIRE', KEYS[3], ARGV[2])
return false
"""
REPEAT_SHA = hashlib.sha1(REPEAT_SCRIPT.encode()).hexdigest()


@lru_cache(maxsize=1)
def _crawlers():
    from crawlerdetect import CrawlerDetect  # builds its large pattern once, on first use

    return CrawlerDetect()


@lru_cache(maxsize=4096)
def is_bot(user_agent: str) -> bool:
    """True for a crawler, a headless browser or a missing user agent (the crawler list, cached per agent)."""
    text = user_agent.strip()
    if not text:
        return True
    return bool(_crawlers().isCrawler(text))


def is_speculative(purpose: str | None) -> bool:
    """True when a purpose header's value announces a prefetch, prerender or preview."""
    if not purpose:
        return False
    lowered = purpose.lower()
    return any(word in lowered for word in _SPECULATIVE)


def screen(user_agent: str | None, *, purpose: str | None = None, method: str = "GET",
           excluded: bool = False) -> str | None:
    """The reason a view does not count (`bot`, `prefetch`, `excluded`), or None when it may.

    `user_agent=None` means the producer does not know it (a server-side job, an import):
    no bot rule applies. An empty user agent is a bot's.
    """
    if excluded:
        return EXCLUDED
    if method.upper() == "HEAD" or is_speculative(purpose):
        return PREFETCH
    if user_agent is not None and is_bot(user_agent):
        return BOT
    return None


def purpose_of(headers: Mapping[str, str]) -> str | None:
    """The speculative-load announcement among request headers (any case), if there is one."""
    lowered = {name.lower(): value for name, value in headers.items()}
    found = [lowered[name] for name in PURPOSE_HEADERS if lowered.get(name)]
    return ",".join(found) or None


def parse_interval(text: str) -> int:
    """READRATE_READ_INTERVAL as milliseconds: `30m`, `1h`, `90s`, `1d`, or `0` (count every view)."""
    raw = (text or "").strip().lower()
    units = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": MS_PER_DAY}
    for unit in sorted(units, key=len, reverse=True):
        number = raw[:-len(unit)] if raw.endswith(unit) else None
        if number is not None and number.strip().isascii() and number.strip().isdigit():
            interval_ms = int(number) * units[unit]
            if interval_ms > MAX_READ_INTERVAL_MS:
                raise ConfigError(f"READRATE_READ_INTERVAL={text!r} is longer than a year; accepted: 0 to 365d")
            return interval_ms
    if raw.isascii() and raw.isdigit() and int(raw) == 0:
        return 0
    raise ConfigError(f"READRATE_READ_INTERVAL={text!r} is not a duration; accepted: 0 (count every view), "
                      "or a number with a unit: 90s, 30m, 1h, 1d")


def seen_key(keys: Keys, shard: int, visitor: str, article_id: str) -> str:
    """The mark `visitor` read `article_id` within the interval, on the article's shard slot.

    Hashed: visitor and article ids hold any character, and the mark needs no more than identity.
    """
    digest = hashlib.blake2b(f"{visitor}\n{article_id}".encode("utf-8", "surrogatepass"), digest_size=12)
    return f"{keys.tag(shard)}:seen:{digest.hexdigest()}"


def dropped_key(keys: Keys, shard: int, day: date) -> str:
    """The hash of one shard's dropped events on `day`, counts by reason."""
    return f"{keys.tag(shard)}:dropped:{day.isoformat()}"


def read_command(keys: Keys, shard: int, event: Read, interval_ms: int) -> tuple:
    """The command that stores `event`: a plain XADD, or the repeat script when the interval rule applies.

    The rule applies to reads that name their visitor; its reply is the entry id, or None for a repeat.
    """
    fields = encode_flat(event)
    if interval_ms <= 0 or event.visitor is None:
        return ("XADD", keys.stream(shard), "*", *fields)
    day = day_date(event.at_ms // MS_PER_DAY)
    return ("EVALSHA", REPEAT_SHA, 3, keys.stream(shard), seen_key(keys, shard, event.visitor, event.article_id),
            dropped_key(keys, shard, day), interval_ms, DROPPED_KEEP_DAYS * 86_400, "*", *fields)


def with_script_text(command: tuple) -> tuple:
    """The same command as EVAL, for a Redis that answered NOSCRIPT (restarted, or flushed its scripts)."""
    if command[0] == "EVALSHA" and command[1] == REPEAT_SHA:
        return ("EVAL", REPEAT_SCRIPT, *command[2:])
    return command


def scripts_again(commands: list[tuple], replies: list) -> dict[int, tuple]:
    """The commands Redis answered NOSCRIPT (restarted, or its scripts flushed), by index, as EVAL with the
    script's text: they did not run, so sending them again counts nothing twice."""
    return {i: with_script_text(commands[i]) for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)}


def drop_commands(keys: Keys, shard: int, reason: str, day: date, count: int = 1) -> list[tuple]:
    """Count `count` events dropped for `reason` on `day`."""
    key = dropped_key(keys, shard, day)
    return [("HINCRBY", key, reason, count), ("EXPIRE", key, DROPPED_KEEP_DAYS * 86_400)]


def dropped_counts(redis: Redis, keys: Keys, days: Iterable[date]) -> dict[date, dict[str, int]]:
    """Dropped events per day and reason, summed over every shard ever used (one round trip)."""
    wanted = list(days)
    shards = list(keys.drained)
    commands = [("HGETALL", dropped_key(keys, shard, day)) for day in wanted for shard in shards]
    replies = send(redis, commands) if commands else []
    counts: dict[date, dict[str, int]] = {day: {} for day in wanted}
    for i, reply in enumerate(replies):
        if isinstance(reply, Exception):
            raise reply
        day = wanted[i // len(shards)]
        pairs = reply.items() if isinstance(reply, dict) else zip(reply[::2], reply[1::2])
        for reason, count in pairs:
            name = reason.decode() if isinstance(reason, bytes) else reason
            counts[day][name] = counts[day].get(name, 0) + int(count)
    return counts


def days_back(today: date, count: int) -> list[date]:
    """The `count` days up to and including `today`, oldest first."""
    return [today - timedelta(days=back) for back in range(count - 1, -1, -1)]
