#!/usr/bin/env python3
"""A real SMTP server (aiosmtpd) on 127.0.0.1 for wuye's delivery tests and benchmark.

Stores each accepted message as <out>/<seq>.eml (seq counts up from 000001 in arrival order).
Prints "READY <port>" on stdout once listening.

  --fail-data N      answer the first N DATA commands with 451 (temporary), then accept
  --reject WORD      answer RCPT with 550 for addresses containing WORD (permanent)
  --delay SECONDS    wait this long before answering each DATA (widens races for kill tests)
  --count-only       do not write files; print nothing until killed (benchmark)
"""
import argparse
import asyncio
import os
import socket
import sys
import time

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, args):
        self.args = args
        self.seq = 0
        self.failed = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.args.reject and self.args.reject in address:
            return "550 5.1.1 <%s>: mailbox unavailable, no such user here" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.args.delay:
            await asyncio.sleep(self.args.delay)
        if self.failed < self.args.fail_data:
            self.failed += 1
            return "451 4.3.0 try again later (test sink)"
        self.seq += 1
        if not self.args.count_only:
            name = os.path.join(self.args.out, "%06d.eml" % self.seq)
            tmp = name + ".tmp"
            with open(tmp, "wb") as f:
                f.write(envelope.original_content or envelope.content)
            os.rename(tmp, name)
        return "250 2.0.0 queued as %d" % self.seq


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", default=".")
    p.add_argument("--fail-data", type=int, default=0)
    p.add_argument("--reject", default="")
    p.add_argument("--delay", type=float, default=0.0)
    p.add_argument("--count-only", action="store_true")
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    port = free_port()
    c = Controller(Sink(args), hostname="127.0.0.1", port=port, data_size_limit=10_000_000)
    c.start()
    print("READY %d" % port, flush=True)
    try:
        # Until the test kills us or closes stdin.
        sys.stdin.read()
    finally:
        c.stop()


if __name__ == "__main__":
    main()
