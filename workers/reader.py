"""The batch reader: XRANGE the next batch of a shard and fold it, one batch ahead of the writer.

While the drain applies one batch (the database works with the GIL released), the
reader fetches and folds the next in a thread of its own, on a Redis connection of
its own whose XRANGE replies stay raw (flat field lists, which `aggregate()` reads
without building a dict per entry). At most one read is in flight; a read nobody
wants any more (the offset moved under the drain) is waited out and dropped.
With the archive on, a third thread writes each batch's Parquet files, so neither
the next read nor the writer's statements wait for them; the writer waits only to
record them, last in the batch's transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from redis import Redis
from redis.cluster import RedisCluster

from readrate.events.clock import now_ms
from readrate.events.connections import WORKER, stream_client
from readrate.events.scale import RatingScale
from readrate.events.settings import Settings
from readrate.events.streamids import after
from readrate.events.wire import Decoder

from .aggregate import Batch, aggregate
from .archive import Archive


# A drain's first read runs while the writer waits: 1,000 entries take about 10 ms to read and fold (20,000
# took 200 ms with the archive on, 0.8 s per drain of four shards).
FIRST_BATCH = 1_000


def _raw_reply(response, **_options):
    return response


class BatchReader:
    """Reads one shard's next batch ahead, in its own thread, on its own Redis connection."""

    def __init__(self, redis: Redis, *, batch_size: int, scale: RatingScale,
                 clock_ms: Callable[[], int] = now_ms, archive: Archive | None = None) -> None:
        self._redis = redis
        # This client is the reader's alone, so changing its reply handling touches no one else.
        self._redis.set_response_callback("XRANGE", _raw_reply)
        self.batch_size = batch_size
        self._decoder = Decoder(scale)  # learns valid ids and ratings; used by the reader thread only
        self._clock_ms = clock_ms
        # With the archive on, a thread of its own writes each batch's archive files while the reader goes on
        # to the next batch and the writer applies this one (pyarrow works with the GIL released); the writer
        # waits for them only to record them, last in the batch's transaction.
        self.archive = archive
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="readrate-reader")
        self._archiver = None if archive is None else \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="readrate-archiver")
        self._ahead: Future | None = None

    @classmethod
    def connect(cls, settings: Settings, *, batch_size: int, scale: RatingScale) -> BatchReader:
        return cls(stream_client(settings.redis_url, WORKER, cluster=settings.cluster), batch_size=batch_size,
                   scale=scale, archive=Archive(settings.archive) if settings.archive else None)

    def rescale(self, scale: RatingScale) -> None:
        """Check ratings against `scale` from the next read on (the installation's scale was changed)."""
        if scale != self._decoder.scale:
            self.drop()
            self._decoder = Decoder(scale)

    def read(self, stream: str, offset: str, shard: int = 0, *, count: int | None = None) -> Batch | None:
        """The batch after `offset` (at most `count` entries, else `batch_size`), folded, read in the caller's
        thread; None if there is none. With the archive on, its files are being written: `Batch.archived()`."""
        if isinstance(self._redis, RedisCluster):
            # A cluster client parses each reply with the callbacks of the node's own client first, and its
            # own callback sees only the parsed entries: make the owning node's client raw as well (a node
            # the client learns of later, after a failover, is made raw at its first read).
            node = self._redis.get_redis_connection(self._redis.get_node_from_key(stream))
            node.set_response_callback("XRANGE", _raw_reply)
        entries = self._redis.xrange(stream, min=after(offset), count=count or self.batch_size)
        if not entries:
            return None
        batch = aggregate(entries, decoder=self._decoder, now_ms=self._clock_ms(), keep=self.archive is not None)
        if self.archive is not None:
            rows, kind, op = batch.counted, None, batch.operation
            if op is not None:  # the archive keeps operator actions too, as rows of their own kind
                rows, kind = [(batch.last_id.encode(), op.article_id, op.at_ms, op.voter, None)], op.action
            batch.archiving = self._archiver.submit(self.archive.write, shard, rows, kind=kind)
        return batch

    def start(self, stream: str, offset: str, shard: int = 0, *, first: bool = False) -> None:
        """Begin reading the batch after `offset`; a read still in flight is waited out and dropped first.

        A `first` batch (nothing to apply meanwhile) is at most FIRST_BATCH entries, so the writer starts
        sooner and applies it while the next, full batch is read."""
        self.drop()
        count = min(self.batch_size, FIRST_BATCH) if first else None
        self._ahead = self._thread.submit(self.read, stream, offset, shard, count=count)

    def take(self) -> Batch | None:
        """The batch `start` asked for (waiting for it); its Redis error, if it failed."""
        ahead, self._ahead = self._ahead, None
        if ahead is None:
            raise RuntimeError("take() without start()")
        return ahead.result()

    def drop(self) -> None:
        """Wait for a read nobody will use, so two never run at once; its errors do not matter."""
        ahead, self._ahead = self._ahead, None
        if ahead is None:
            return
        try:
            batch = ahead.result()
        except Exception:  # noqa: BLE001 - the read was speculative
            return
        if batch is not None:
            self.discard(batch)

    def discard(self, batch: Batch) -> None:
        """Remove the archive files of a batch nobody applies (once written; a failed write left none that
        count: clean() removes what it left)."""
        if self.archive is None:
            return
        try:
            files = batch.archived()
        except Exception:  # noqa: BLE001 - nothing recorded, nothing to undo
            return
        self.archive.remove(files)

    def close(self) -> None:
        self.drop()
        self._thread.shutdown(wait=True)
        if self._archiver is not None:
            self._archiver.shutdown(wait=True)
        self._redis.close()
