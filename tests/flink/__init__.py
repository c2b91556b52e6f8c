"""Parity of the worker with the PyFlink oracle (docs/flink-parity.md)."""
