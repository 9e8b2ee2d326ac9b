#!/usr/bin/env python3
"""Writes a large, linearizable key-value history in faultline's history.jsonl format.

The input of the check-history benchmark in docs/performance.md (issue 18's target: a
1,000,000-operation keyed history checked in under 1.5 s and 400 MiB):

    python3 bench/gen_history.py > /tmp/h1m.jsonl        # 1,000,000 ops, 100 keys, 10 clients
    /usr/bin/time -f "%e s %M KB" target/release/faultline check-history /tmp/h1m.jsonl

`clients` sequential clients issue `ops` register operations on `keys` keys against an atomic
store: get 50 %, put 35 %, cas 15 %. Every written value is unique (`v<n>` for puts, `c<n>` for
a cas's new value), as faultline's own workloads write. Each operation takes effect at a random
instant between its invoke and its completion; a cas expects the key's current value three times
in four (`ok`) and a value never written otherwise (`fail`); with `--info-percent P` that share
of operations times out (`info`; half of them took effect, half never did; the client continues
as a new process, as in Jepsen). The history is linearizable by construction. The same arguments
give the same bytes (Python's own seeded `random.Random`; no clock, no OS randomness). About
240 bytes per operation.
"""

import argparse
import json
import random
import sys


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ops", type=int, default=1_000_000, help="operations (default 1,000,000)")
    p.add_argument("--keys", type=int, default=100, help="keys (default 100)")
    p.add_argument("--clients", type=int, default=10, help="concurrent clients (default 10)")
    p.add_argument("--seed", type=int, default=18, help="random seed (default 18)")
    p.add_argument(
        "--info-percent",
        type=float,
        default=0.0,
        help="share of operations that time out, in percent (default 0)",
    )
    args = p.parse_args()
    rng = random.Random(args.seed)
    keys, clients = max(1, args.keys), max(1, args.clients)
    info_share = args.info_percent / 100.0

    # Plan: (invoke_ns, effect_ns, complete_ns, client, f, key) per operation. The client that
    # is free first goes next, so every client stays busy.
    next_free = [0] * clients
    planned = []
    for _ in range(args.ops):
        client = min(range(clients), key=lambda c: (next_free[c], c))
        invoke = next_free[client] + rng.randrange(1, 50_000)
        effect = invoke + rng.randrange(1, 200_000)
        complete = effect + rng.randrange(1, 200_000)
        next_free[client] = complete
        roll = rng.random()
        f = "get" if roll < 0.5 else "put" if roll < 0.85 else "cas"
        planned.append((invoke, effect, complete, client, f, rng.randrange(keys)))

    # Apply in effect order: (type, invoke value, completion value) per operation.
    store = [None] * keys
    results = [None] * len(planned)
    for i in sorted(range(len(planned)), key=lambda i: (planned[i][1], i)):
        _, _, _, _, f, k = planned[i]
        info = rng.random() < info_share
        applies = not info or rng.random() < 0.5
        if f == "get":
            kind, arg, value = "ok", None, store[k]
        elif f == "put":
            arg = value = f"v{i}"
            kind = "ok"
            if applies:
                store[k] = arg
        else:
            current = store[k]
            expected = current if current is not None and rng.randrange(4) < 3 else f"stale{i}"
            arg = value = [expected, f"c{i}"]
            if expected == current:
                kind = "ok"
                if applies:
                    store[k] = f"c{i}"
            else:
                kind = "fail"
        if info and kind == "ok":
            kind = "info"
        results[i] = (kind, arg, value)

    # Events in time order; an info retires the process.
    timeline = []
    for i, (invoke, _, complete, _, _, _) in enumerate(planned):
        timeline.append((invoke, 0, i))
        timeline.append((complete, 1, i))
    timeline.sort()
    process_of_client = list(range(clients))
    next_process = clients
    process_of_op = [0] * len(planned)
    dumps = json.dumps
    out = sys.stdout
    lines = []
    for index, (t, is_completion, i) in enumerate(timeline):
        _, _, _, client, f, k = planned[i]
        kind, arg, value = results[i]
        if is_completion:
            process = process_of_op[i]
            if kind == "info":
                process_of_client[client] = next_process
                next_process += 1
            error = {"fail": ',"error":"mismatch"', "info": ',"error":"timeout"'}.get(kind, "")
            shown = value if kind == "ok" else arg
        else:
            process = process_of_op[i] = process_of_client[client]
            kind, shown, error = "invoke", arg, ""
        lines.append(
            f'{{"index":{index},"time_ns":{t},"process":{process},"node":"c{client + 1}",'
            f'"type":"{kind}","f":"{f}","key":"k{k}","value":{dumps(shown, separators=(",", ":"))}{error}}}\n'
        )
        if len(lines) >= 65536:
            out.write("".join(lines))
            lines.clear()
    out.write("".join(lines))


if __name__ == "__main__":
    main()
