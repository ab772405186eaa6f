"""readrate's consumer side: aggregate stream entries in batches into the SQL database, exactly once.

`aggregate()` (pure) folds entries into a Batch; `writer.apply_batch()` applies one
Batch in one transaction; `drain.drain_shard` is the RQ job; `runner` is the
`readrate worker` process with its sweep.
"""
