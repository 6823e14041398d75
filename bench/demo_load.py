"""Load test of the Space demo: N concurrent chat requests against the real Gradio server on 127.0.0.1.

    python bench/demo_load.py                         # tiny random models, 24 concurrent chats
    python bench/demo_load.py --chat-model runs/instructions --spam-model runs/spam --requests 32
    python bench/demo_load.py --quick                 # smoke run: 4 requests

Reports errors (must be 0), per-request latency (p50 / p95 / max) and total wall time. Traffic goes only to the
local server this script starts.
"""

import argparse
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "spaces_demo"))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chat-model")
    parser.add_argument("--spam-model")
    parser.add_argument("--requests", type=int, default=24)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.requests, args.max_new_tokens = 4, 8

    from gradio_client import Client

    import app
    from tiny_models import launch_local

    demo, url = launch_local(args.chat_model, args.spam_model)

    def one(i):
        client = Client(url, verbose=False)
        start = time.perf_counter()
        text = client.predict(f"Request {i}: give me a short sentence.", args.max_new_tokens, 0.8, 40, api_name="/chat")
        assert isinstance(text, str) and text, f"empty reply to request {i}"
        return time.perf_counter() - start

    errors, latencies = [], []
    start = time.perf_counter()
    try:
        with ThreadPoolExecutor(max_workers=args.requests) as pool:
            for future in [pool.submit(one, i) for i in range(args.requests)]:
                try:
                    latencies.append(future.result(timeout=600))
                except Exception as error:  # noqa: BLE001 -- count every failure
                    errors.append(repr(error))
        wall = time.perf_counter() - start
    finally:
        demo.close()
    latencies.sort()
    p95 = latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))] if latencies else float("nan")
    print(f"{args.requests} concurrent chat requests ({args.max_new_tokens} new tokens each, queue concurrency "
          f"{app.CHAT_CONCURRENCY}): {len(errors)} errors, wall {wall:.1f} s")
    if latencies:
        print(f"latency p50 {statistics.median(latencies):.2f} s, p95 {p95:.2f} s, max {latencies[-1]:.2f} s")
    for error in errors[:5]:
        print("error:", error)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
