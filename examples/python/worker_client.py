#!/usr/bin/python3
"""Example client for worker-orcd (docs/protocol.md): submit a prompt or a chat, stream the text with a
live tokens/s counter, cancel, query status, and watch the events socket (model-load progress bar,
narration).

Uses Debian's python3-zmq and python3-msgpack; run it with /usr/bin/python3 (a pyenv python3 on PATH may
lack them).

    worker_client.py chat "Write a haiku about GPUs" --max-tokens 64 --seed 7
    worker_client.py prompt "Once upon a time" --cancel-after 5
    worker_client.py status
    worker_client.py watch                 # progress bar while a worker loads, then narration
    worker_client.py cancel JOB_ID
"""
import argparse
import sys
import time
import uuid

import msgpack
import zmq

PROTOCOL_VERSION = 1


class WorkerError(Exception):
    def __init__(self, reply):
        super().__init__(f"{reply.get('code')}: {reply.get('message')}")
        self.reply = reply


class WorkerClient:
    """A DEALER connection to one worker. Replies for several jobs may interleave; each carries job_id."""

    def __init__(self, endpoint="tcp://127.0.0.1:5555", context=None):
        self.context = context or zmq.Context.instance()
        self.socket = self.context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(endpoint)

    def close(self):
        self.socket.close()

    def send(self, kind, **fields):
        body = {"v": PROTOCOL_VERSION, "kind": kind}
        body.update({k: v for k, v in fields.items() if v is not None})
        self.socket.send(msgpack.packb(body, use_bin_type=True))

    def recv(self, timeout_ms=None):
        if timeout_ms is not None and not self.socket.poll(timeout_ms):
            return None
        return msgpack.unpackb(self.socket.recv(), raw=False)

    def ask(self, kind, timeout_ms=10000, **fields):
        """A request with exactly one reply (status, ping, cancel)."""
        request_id = uuid.uuid4().hex[:12]
        self.send(kind, request_id=request_id, **fields)
        deadline = time.monotonic() + timeout_ms / 1000
        while time.monotonic() < deadline:
            reply = self.recv(max(1, int((deadline - time.monotonic()) * 1000)))
            if reply is not None and reply.get("request_id") == request_id:
                return reply
        raise TimeoutError(f"no reply to {kind}")

    def submit(self, job_id=None, prompt=None, messages=None, **params):
        """Submits a job and yields its replies (accepted, started, token..., end | error)."""
        job_id = job_id or "job-" + uuid.uuid4().hex[:10]
        self.send("submit", job_id=job_id, prompt=prompt, messages=messages, **params)
        while True:
            reply = self.recv()
            if reply.get("job_id") != job_id:
                continue
            yield reply
            if reply["kind"] in ("end", "error"):
                return


def sampling_params(args):
    return dict(max_tokens=args.max_tokens, temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
                seed=args.seed, stop=args.stop or None, deadline_ms=args.deadline_ms,
                correlation_id=args.correlation_id)


def stream_job(client, args, prompt=None, messages=None):
    """Prints the completion as it streams; live tokens/s on stderr; returns the process exit code."""
    job_id = args.job_id or "job-" + uuid.uuid4().hex[:10]
    live = sys.stderr.isatty()
    tokens = 0
    first_token_at = None
    for reply in client.submit(job_id=job_id, prompt=prompt, messages=messages, assistant_prefill=args.prefill,
                               **sampling_params(args)):
        kind = reply["kind"]
        if kind == "accepted":
            print(f"[{job_id}] accepted (queue position {reply['queue_position']}, "
                  f"correlation {reply['correlation_id']})", file=sys.stderr)
        elif kind == "started":
            print(f"[{job_id}] started: {reply['prompt_tokens']} prompt tokens, seed {reply['seed']}",
                  file=sys.stderr)
        elif kind == "token":
            tokens += len(reply["token_ids"])
            now = time.monotonic()
            first_token_at = first_token_at or now
            channel = reply.get("channel")  # harmony models: analysis (reasoning) vs final
            if channel in ("analysis", "commentary"):
                if not args.hide_reasoning:
                    dim = sys.stdout.isatty()
                    sys.stdout.write(("\x1b[2m" if dim else "") + reply["text"] + ("\x1b[0m" if dim else ""))
            else:
                sys.stdout.write(reply["text"])
            sys.stdout.flush()
            if live and tokens > 1:
                rate = (tokens - 1) / max(now - first_token_at, 1e-9)
                sys.stderr.write(f"\x1b7\x1b[999;1H\x1b[2K  {tokens} tokens  {rate:6.1f} tok/s\x1b8")
                sys.stderr.flush()
            if args.cancel_after and tokens == args.cancel_after:
                client.send("cancel", job_id=job_id)
        elif kind == "end":
            t = reply["timings"]
            print(f"\n[{job_id}] end: {reply['stop_reason']}, {reply['tokens_in']} in / {reply['tokens_out']} out, "
                  f"prefill {t['prefill_ms']:.0f} ms, decode {t['decode_tokens_per_s']:.1f} tok/s, "
                  f"total {t['total_ms']:.0f} ms", file=sys.stderr)
            return 0
        elif kind == "error":
            print(f"\n[{job_id}] error {reply['code']}: {reply['message']}", file=sys.stderr)
            for f in reply.get("fields", []):
                print(f"  {f['field']}: {f['problem']}", file=sys.stderr)
            return 0 if reply["code"] == "CANCELLED" and args.cancel_after else 1
    return 1


def progress_bar(event, width=40):
    done = int(width * event["percent"] / 100)
    return (f"\r{event['phase']:>8} [{'#' * done}{'.' * (width - done)}] {event['percent']:5.1f}% "
            f"{event['tensors_done']}/{event['tensors_total']} tensors {event['rate_mb_s']:8.1f} MB/s")


def watch(args):
    """Subscribes to the events socket: a progress bar while the model loads, then narration lines."""
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    for topic in (args.topics or ["progress/", "narration/", "status/"]):
        sub.setsockopt_string(zmq.SUBSCRIBE, topic)
    sub.connect(args.events)
    deadline = time.monotonic() + args.seconds if args.seconds else None
    while deadline is None or time.monotonic() < deadline:
        if not sub.poll(200):
            continue
        topic, body = sub.recv_multipart()
        event = msgpack.unpackb(body, raw=False)
        if event["kind"] == "progress":
            sys.stderr.write(progress_bar(event))
            if event["phase"] in ("ready", "failed"):
                sys.stderr.write("\n")
                if args.until_ready:
                    return 0 if event["phase"] == "ready" else 1
        elif event["kind"] == "narration":
            job = f" {event['job_id']}" if event.get("job_id") else ""
            print(f"{event['actor']:>12} {event['action']:<12}{job} {event['human']}")
        elif event["kind"] == "status" and args.verbose:
            vram = ""
            if event.get("vram_total"):
                vram = (f" vram {event['vram_used'] / 2**30:.2f}/{event['vram_total'] / 2**30:.2f} GiB"
                        f" (engine {event.get('vram_engine', 0) / 2**30:.2f})")
            print(f"status: {event['state']} active {event['jobs_active']} queued {event['jobs_queued']}{vram}"
                  f" resident {event['resident']}")
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoint", default="tcp://127.0.0.1:5555", help="the worker's --listen")
    parser.add_argument("--events", default="tcp://127.0.0.1:5556", help="the worker's --events")
    sub = parser.add_subparsers(dest="command", required=True)

    def job_options(p):
        p.add_argument("--job-id")
        p.add_argument("--max-tokens", type=int, default=64)
        p.add_argument("--temperature", type=float)
        p.add_argument("--top-p", type=float)
        p.add_argument("--top-k", type=int)
        p.add_argument("--seed", type=int)
        p.add_argument("--stop", action="append", help="stop string (repeatable)")
        p.add_argument("--deadline-ms", type=int)
        p.add_argument("--correlation-id")
        p.add_argument("--cancel-after", type=int, help="send cancel after this many tokens")
        p.add_argument("--prefill", help="chat: start of the assistant's reply")
        p.add_argument("--hide-reasoning", action="store_true", help="harmony models: do not print the analysis channel")

    p = sub.add_parser("chat", help="one user message in the model's chat format")
    p.add_argument("message")
    p.add_argument("--system")
    job_options(p)
    p = sub.add_parser("prompt", help="raw text, no chat template")
    p.add_argument("text")
    job_options(p)
    sub.add_parser("status")
    sub.add_parser("ping")
    p = sub.add_parser("cancel")
    p.add_argument("job_id")
    p = sub.add_parser("watch", help="progress bar / narration from the events socket")
    p.add_argument("--topics", action="append")
    p.add_argument("--seconds", type=float, help="stop after this long")
    p.add_argument("--until-ready", action="store_true", help="stop when the model is loaded")
    p.add_argument("--verbose", action="store_true")
    args = parser.parse_args()

    if args.command == "watch":
        return watch(args)
    client = WorkerClient(args.endpoint)
    try:
        if args.command == "chat":
            messages = ([{"role": "system", "content": args.system}] if args.system else []) + \
                       [{"role": "user", "content": args.message}]
            return stream_job(client, args, messages=messages)
        if args.command == "prompt":
            return stream_job(client, args, prompt=args.text)
        if args.command == "cancel":
            print(client.ask("cancel", job_id=args.job_id))
            return 0
        reply = client.ask(args.command)
        for key, value in reply.items():
            print(f"{key:>14}: {value}")
        return 0
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
