"""The embedded mode (``logwarden detect`` on a laptop) needs neither streaming client.

Kafka and Elasticsearch clients are core dependencies (see the README), but nothing on the file path may
import them: a subprocess whose imports of ``kafka``, ``elasticsearch`` and ``elastic_transport`` fail runs
``detect`` end to end.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "examples" / "hdfs_sample.log"

BLOCKED_RUN = """
import sys

BLOCKED = ("kafka", "elasticsearch", "elastic_transport")


class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked: the embedded mode must not import it")
        return None


sys.meta_path.insert(0, Block())
from pipeline.cli.app import main

sys.argv = ["logwarden", *sys.argv[1:]]
main()
"""


def test_detect_runs_without_the_streaming_clients(tmp_path: Path) -> None:
    log = tmp_path / "slice.log"
    log.write_text("".join(SAMPLE.read_text(encoding="utf-8").splitlines(keepends=True)[:4000]), encoding="utf-8")
    out = tmp_path / "anomalies.jsonl"
    args = [str(log), "--log-format", "<Date> <Time> <Pid> <Level> <Component>: <Content>",
            "--entity-regex", r"blk_-?\d+", "--out", str(out)]
    done = subprocess.run([sys.executable, "-c", BLOCKED_RUN, "detect", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    docs = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert docs and all(doc["anomaly"]["is_anomaly"] for doc in docs)
    assert all(doc["entity"]["id"].startswith("blk_") for doc in docs)
