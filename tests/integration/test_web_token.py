"""The worker's HTTP API behind WEB_TOKEN, on the real broker: /pair and /top answer only the
bearer token, /health, /ready and /metrics stay open, a query routed to the worker owning the
key carries the token there, and the operator commands send it from the same variables."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from generator import GeneratorConfig, generate
from tests.integration.kafka_io import produce
from tests.integration.pipeline import TIMEOUT, Pipeline
from tests.integration.workers import REPO, WorkerProcess

# 20 accounts: at most 380 pairs, so one /top?n=1000 lists every pair with an open window.
STREAM = GeneratorConfig(count=600, accounts=20, seed=16, mean_gap_ms=100, scenarios=1)
TOKEN = f"web-{secrets.token_hex(16)}"
WRONG = f"web-{secrets.token_hex(16)}"
RIGHT = {"Authorization": f"Bearer {TOKEN}"}
REFUSED: list[Mapping[str, str] | None] = [
    None,
    {"Authorization": f"Bearer {WRONG}"},
    {"Authorization": f"Bearer {TOKEN[:-1]}"},
    {"Authorization": TOKEN},  # no scheme
    {"Authorization": f"Basic {TOKEN}"},
]


def faust(env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "faust"), "-A", "app", *args],
        cwd=REPO,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def url(worker: WorkerProcess) -> str:
    return f"http://127.0.0.1:{worker.web_port}"


def local_pairs(worker: WorkerProcess) -> list[str]:
    """The pairs in this worker's own state, largest window first (/top without the others)."""
    status, body = worker.get("/top?local=1&n=1000", headers=RIGHT)
    assert status == 200, body
    return [row["pair"] for row in body["pairs"]]


async def test_the_web_token_guards_pair_and_top_and_travels_with_routed_queries(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    token_file = tmp_path / "web-token"  # as a Secret is mounted: the token and a newline
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    pipeline.env["WEB_TOKEN_FILE"] = str(token_file)
    workers = [pipeline.worker(i) for i in range(2)]
    for worker in workers:  # both in the group before any input: each owns some pairs
        worker.wait_ready(timeout=TIMEOUT)  # /ready, without a token
    written = await produce(
        pipeline.bootstrap,
        pipeline.topics["transactions"],
        [(r.key, r.value) for r in generate(STREAM)],
        client_options=pipeline.client_options,
    )
    workers[0].wait_until(
        lambda: sum(w.metric("fraud_records_received_total") for w in workers) >= len(written),
        f"{len(written)} records processed",
        TIMEOUT,
    )  # /metrics, without a token

    pairs_of = [local_pairs(w) for w in workers]
    assert pairs_of[0] and pairs_of[1], f"each worker should own pairs, got {pairs_of}"
    assert not set(pairs_of[0]) & set(pairs_of[1]), "a pair lives on one worker"
    owned_by_b = pairs_of[1][0]

    for worker in workers:
        for path in (f"/pair/{owned_by_b}", "/top?n=5", "/top?local=1"):
            for headers in REFUSED:
                status, body = worker.get(path, headers=headers)
                assert status == 401, f"{worker.name} {path} with {headers}: {status} {body}"
                assert "WEB_TOKEN" in body["error"]
        for path in ("/health", "/ready", "/metrics"):
            status, _ = worker._get(path, timeout=10.0)
            assert status == 200, f"{worker.name} {path} without a token: {status}"

    # Worker A holds nothing of the pair: Faust routes the query to B, whose answer is 200
    # only if the token came along (B refuses a query without it, as checked above).
    status, via_a = workers[0].get(f"/pair/{owned_by_b}", headers=RIGHT)
    assert status == 200, via_a
    assert via_a["windows"], f"{owned_by_b} has open windows on its owner: {via_a}"
    assert via_a == workers[1].get(f"/pair/{owned_by_b}", headers=RIGHT)[1]
    # /top on A asks B for its pairs with the token: the answer has both workers' pairs
    status, top = workers[0].get("/top?n=1000", headers=RIGHT)
    assert status == 200, top
    assert {row["pair"] for row in top["pairs"]} == set(pairs_of[0]) | set(pairs_of[1])

    # The commands send the token from WEB_TOKEN_FILE or WEB_TOKEN, as the workers read it.
    sender, receiver = owned_by_b.split(":")
    bare = {
        k: v for k, v in {**os.environ, **pipeline.env}.items() if not k.startswith("WEB_TOKEN")
    }
    outputs = []
    for env in ({**bare, "WEB_TOKEN_FILE": str(token_file)}, {**bare, "WEB_TOKEN": TOKEN}):
        pair = faust(env, "pair", sender, receiver, "--url", url(workers[0]), "--json")
        assert pair.returncode == 0, pair.stderr
        assert json.loads(pair.stdout) == via_a
        rows = faust(env, "top", "--n", "3", "--url", url(workers[0]), "--json")
        assert rows.returncode == 0, rows.stderr
        assert json.loads(rows.stdout) == top["pairs"][:3]
        outputs += [pair.stdout + pair.stderr, rows.stdout + rows.stderr]
    for env, given in ((bare, "no token"), ({**bare, "WEB_TOKEN": WRONG}, "a wrong token")):
        refused = faust(env, "pair", sender, receiver, "--url", url(workers[1]))
        assert refused.returncode != 0
        assert refused.stderr.strip() == (
            f"the worker at {url(workers[1])} refused {given} (401): set WEB_TOKEN or "
            "WEB_TOKEN_FILE to the workers' token"
        )
        outputs.append(refused.stdout + refused.stderr)

    for text in (*outputs, *(w.log_text() for w in workers)):
        assert TOKEN not in text and WRONG not in text, "a token was printed"
