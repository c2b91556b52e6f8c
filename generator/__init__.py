"""Transaction generator: writes `TIMESTAMP;SENDER;RECEIVER;AMOUNT` lines to Kafka.

The input side of the pipeline. The pure part (`GeneratorConfig` -> `generate` -> `Record`s, and
the ground truth of what was injected) is importable by tests; `python -m generator` sends it.
"""

from generator.config import GeneratorConfig
from generator.errors import BrokerError, ConfigError, GeneratorError
from generator.formats import Layout, format_rfc850, format_rfc3339, parse_rfc3339
from generator.malformed import DLQ_REASONS, DlqReason
from generator.scenarios import ScenarioRef, ScenarioType
from generator.stream import Record, RecordKind, generate
from generator.truth import (
    GroundTruth,
    MalformedTruth,
    ScenarioTruth,
    TruthEntry,
    ground_truth,
    write_ground_truth,
)

__all__ = [
    "DLQ_REASONS",
    "BrokerError",
    "ConfigError",
    "DlqReason",
    "GeneratorConfig",
    "GeneratorError",
    "GroundTruth",
    "Layout",
    "MalformedTruth",
    "Record",
    "RecordKind",
    "ScenarioRef",
    "ScenarioTruth",
    "ScenarioType",
    "TruthEntry",
    "format_rfc850",
    "format_rfc3339",
    "generate",
    "ground_truth",
    "parse_rfc3339",
    "write_ground_truth",
]
