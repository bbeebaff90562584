"""A separate sender process for the forged-traffic e2e test: ``python -m tests.support.rogue``.

It holds one member's secret key file and talks to a gateway like a node would:
``--label`` seals one envelope with that handling label and sends it; ``--replay``
sends the identical signed request twice (same nonce). It prints one JSON line
per request: the HTTP status, the error code if any, and the events/reasons of
the receipts in a 200 answer.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from gateway.keyfile import read_secret_keys
from protocol import envelope as env_mod
from protocol.batch import BatchItem, BatchResults, EnvelopeBatch
from protocol.receipts import SignedReceipt
from protocol.roster import SignedRoster
from protocol.transport import sign_request


def _post(url: str, body: bytes, auth: str) -> dict[str, object]:
    request = urllib.request.Request(url + "/v1/envelopes", data=body, headers={"Authorization": auth, "Content-Type": "application/x-msgpack"})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            answer = resp.read()
            return {"status": resp.status, "results": [r.hex() for r in BatchResults.from_bytes(answer).results]}
    except urllib.error.HTTPError as exc:
        return {"status": exc.code, "code": json.loads(exc.read())["error"]["code"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--key", required=True)
    p.add_argument("--roster", required=True)
    p.add_argument("--url", required=True)
    p.add_argument("--to", required=True, help="recipient member id")
    p.add_argument("--gateway", required=True)
    p.add_argument("--label", default="TLP:GREEN")
    p.add_argument("--replay", action="store_true")
    args = p.parse_args(argv)
    keys = read_secret_keys(Path(args.key))
    roster = SignedRoster.from_bytes(Path(args.roster).read_bytes()).roster
    now = time.time_ns() // 1_000_000
    env = env_mod.seal(
        sender=keys,
        roster=roster,
        tiers=[env_mod.Tier(name="all", sections=("summary",), recipients=(args.to,))],
        sections={"summary": b"rogue traffic"},
        priority="FLASH",
        label=args.label,
        now=now,
        expires=now + 600_000,
        rng=os.urandom,
    )
    body = EnvelopeBatch(items=(BatchItem(envelope=env.to_bytes(), recipients=(args.to,)),)).to_bytes()
    auth = sign_request(keys, method="POST", path="/v1/envelopes", query="", destination=args.gateway, body=body, now=now, nonce=os.urandom(16))
    for _ in range(2 if args.replay else 1):
        outcome = _post(args.url, body, auth)
        receipts = [SignedReceipt.from_bytes(bytes.fromhex(str(r))).verify(roster) for r in outcome.pop("results", [])]  # type: ignore[attr-defined]
        outcome["receipts"] = [{"event": r.event, "reason": r.reason} for r in receipts]
        print(json.dumps(outcome), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
