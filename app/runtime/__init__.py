"""The runtime under the detector: the pieces of Faust the project owns (DESIGN §8).

- ``consumer``: hands the input to the detector a batch per partition, and commits what it
  processed;
- ``producer``: sends records straight to Kafka, and flushes only when all were delivered;
- ``state``: the pair-windows table read and written a batch at a time (RocksDB write batches,
  changelog record batches);
- ``fencing``: the table whose changelog records name their writer;
- ``localstate``: local tables kept after a clean stop, rebuilt after a crash;
- ``assignment``: partitions added to the input;
- ``watches``: restarts of a worker whose reading stalls;
- ``loopwatch``: exits a worker whose event loop is blocked, with every thread's stack.
"""
