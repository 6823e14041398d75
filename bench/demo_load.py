"""Load test of the Space demo: a burst of concurrent chat requests against the real Gradio server on 127.0.0.1.

    python bench/demo_load.py                         # tiny random models, 100 requests at once, the app's queue (64)
    python bench/demo_load.py --chat-model runs/instructions --spam-model runs/spam --requests 32
    python bench/demo_load.py --quick                 # smoke run: 8 requests, queue of 2

Every request is one user (its own ``gradio_client.Client``, connected before the burst), all sent at once. Each
ends answered, told the queue is full (gradio_client's ``QueueError``, "Queue is full! Please try again."), or with
a server error (must be 0). Reports the counts, latency p50 / p95 / max of the answered ones, the wall time, and
whether the server answers a request after the burst. Traffic goes only to the local server this script starts.
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


def percentile(values, q):
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def main(argv=None):
    import app

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chat-model")
    parser.add_argument("--spam-model")
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--max-new-tokens", type=int, default=64, help="longer replies keep the queue full longer")
    parser.add_argument("--queue-size", type=int, default=app.QUEUE_SIZE)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.requests, args.max_new_tokens, args.queue_size = 8, 8, 2

    from gradio_client import Client
    from gradio_client.utils import QueueError

    from tiny_models import launch_local

    demo, url = launch_local(args.chat_model, args.spam_model, queue_size=args.queue_size)

    def one(client, i):
        start = time.perf_counter()
        try:
            text = client.predict(f"Request {i}: give me a short sentence.", args.max_new_tokens, 0.8, 40,
                                  api_name="/chat")
        except QueueError as error:
            return "busy", time.perf_counter() - start, str(error)
        except Exception as error:  # noqa: BLE001 -- every other failure is a server error
            return "error", time.perf_counter() - start, repr(error)
        if not isinstance(text, str) or not text:
            return "error", time.perf_counter() - start, f"empty reply {text!r}"
        return "answered", time.perf_counter() - start, ""

    try:
        # users arrive first (each client reads the app's config); they wait for the server as a browser does, not
        # httpx's default 5 s (while 4 generations hold the CPUs, the server can take longer to take a request in)
        with ThreadPoolExecutor(max_workers=8) as pool:
            clients = list(pool.map(lambda _: Client(url, verbose=False, httpx_kwargs={"timeout": 300}),
                                    range(args.requests)))
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.requests) as pool:  # then every request leaves at once
            results = list(pool.map(one, clients, range(args.requests)))
        wall = time.perf_counter() - start
        after = Client(url, verbose=False).predict("Still there?", 4, 0.8, 40, api_name="/chat")
    finally:
        demo.close()
    outcome = {kind: [r for r in results if r[0] == kind] for kind in ("answered", "busy", "error")}
    latencies = sorted(seconds for _, seconds, _ in outcome["answered"])
    print(f"{args.requests} concurrent chat requests ({args.max_new_tokens} new tokens each, {app.CHAT_CONCURRENCY} "
          f"generations at once, queue of {args.queue_size}): {len(outcome['answered'])} answered, "
          f"{len(outcome['busy'])} told the queue is full, {len(outcome['error'])} server errors, wall {wall:.1f} s")
    if latencies:
        print(f"answered latency p50 {statistics.median(latencies):.2f} s, p95 {percentile(latencies, 0.95):.2f} s, "
              f"max {latencies[-1]:.2f} s")
    if outcome["busy"]:
        told = sorted(seconds for _, seconds, _ in outcome["busy"])
        print(f"told the queue is full after p50 {statistics.median(told):.2f} s, max {told[-1]:.2f} s: "
              f"{outcome['busy'][0][2]!r}")
    print(f"after the burst, a new request is answered: {isinstance(after, str) and bool(after)}")
    for _, _, error in outcome["error"][:5]:
        print("error:", error)
    return 1 if outcome["error"] or not after else 0


if __name__ == "__main__":
    sys.exit(main())
