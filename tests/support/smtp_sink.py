#!/usr/bin/env python3
"""A real SMTP server (aiosmtpd) on 127.0.0.1 for wuye's delivery tests and benchmark.

Stores each accepted message as <out>/<seq>.eml (seq counts up from 000001 in arrival order).
Prints "READY <port>" on stdout once listening.

  --fail-data N      answer the first N DATA commands with 451 (temporary), then accept
  --reject WORD      answer RCPT with 550 for addresses containing WORD (permanent)
  --delay SECONDS    wait this long before answering each DATA (widens races for kill tests)
  --stall-after-data N   store the first N messages, then answer their final "." only after
                     --stall-secs (default an hour): the client cannot know the relay has them,
                     so its outcome is ambiguous
  --drop-after-data N    close the connection of the first N messages after their final ".",
                     without answering or storing them (ambiguous too)
  --stall-rcpt N     never answer the first N RCPT commands (a failure before DATA: the relay
                     cannot have the message)
  --count-only       do not write files; print nothing until killed (benchmark)
  --port N --reuse-port   listen on port N with SO_REUSEPORT, so several sink processes share
                     one port and the kernel spreads connections over them (benchmark: one
                     aiosmtpd process is single-threaded and tops out near one core)
  --tls starttls|implicit --cert PEM --key PEM   require STARTTLS, or TLS from the first byte
  --auth USER:PASS   require AUTH (PLAIN/LOGIN) with these credentials

Next to each message, <seq>.json says whether the session was encrypted and who authenticated.
"""
import argparse
import asyncio
import os
import json
import socket
import ssl
import sys
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Sink:
    def __init__(self, args):
        self.args = args
        self.seq = 0
        self.failed = 0
        self.stalled_rcpt = 0
        self.stalled_data = 0
        self.dropped = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.stalled_rcpt < self.args.stall_rcpt:
            self.stalled_rcpt += 1
            await asyncio.sleep(3600)
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
        if self.dropped < self.args.drop_after_data:
            self.dropped += 1
            server.transport.abort()
            return "421 4.3.0 gone (test sink; never reaches the client)"
        stall = self.stalled_data < self.args.stall_after_data
        if stall:
            self.stalled_data += 1
        self.seq += 1
        seq = self.seq
        if not self.args.count_only:
            name = os.path.join(self.args.out, "%06d.eml" % self.seq)
            tmp = name + ".tmp"
            with open(tmp, "wb") as f:
                f.write(envelope.original_content or envelope.content)
            os.rename(tmp, name)
            auth = getattr(session, "auth_data", None)
            login = auth.login if isinstance(auth, LoginPassword) else None
            with open(os.path.join(self.args.out, "%06d.json" % self.seq), "w") as f:
                tls = session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None
                json.dump({"tls": tls, "authenticated": bool(session.authenticated),
                           "login": login.decode() if isinstance(login, bytes) else login}, f)
        if stall:
            # Stored, as a relay that queued it and then hung would have.
            await asyncio.sleep(self.args.stall_secs)
        return "250 2.0.0 queued as %d" % seq


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def serve_reuse_port(args, port):
    # aiosmtpd's Controller checks it started by connecting to its own port, which with
    # SO_REUSEPORT may reach a sibling process; so run the server on this thread's loop instead.
    from aiosmtpd.smtp import SMTP

    loop = asyncio.new_event_loop()
    handler = Sink(args)
    server = loop.run_until_complete(loop.create_server(
        lambda: SMTP(handler, hostname="127.0.0.1", data_size_limit=10_000_000),
        host="127.0.0.1", port=port, reuse_port=True))
    print("READY %d" % port, flush=True)
    # Until the benchmark kills us or closes stdin.
    loop.add_reader(sys.stdin.fileno(), lambda: sys.stdin.read(1) or loop.stop())
    loop.run_forever()
    server.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", default=".")
    p.add_argument("--fail-data", type=int, default=0)
    p.add_argument("--reject", default="")
    p.add_argument("--delay", type=float, default=0.0)
    p.add_argument("--count-only", action="store_true")
    p.add_argument("--stall-after-data", type=int, default=0)
    p.add_argument("--stall-secs", type=float, default=3600.0)
    p.add_argument("--drop-after-data", type=int, default=0)
    p.add_argument("--stall-rcpt", type=int, default=0)
    p.add_argument("--tls", default="none", choices=["none", "starttls", "implicit"])
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--auth", default="")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--reuse-port", action="store_true")
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    port = args.port or free_port()
    if args.reuse_port:
        serve_reuse_port(args, port)
        return
    kwargs = {}
    if args.auth:
        user, password = args.auth.split(":", 1)

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (isinstance(auth_data, LoginPassword)
                  and auth_data.login.decode() == user and auth_data.password.decode() == password)
            return AuthResult(success=ok, handled=False)

        kwargs.update(authenticator=authenticator, auth_required=True,
                      # aiosmtpd only counts STARTTLS as TLS; implicit TLS is encrypted anyway.
                      auth_require_tls=args.tls == "starttls")
    ssl_context = None
    if args.tls != "none":
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.cert, args.key)
        if args.tls == "starttls":
            kwargs.update(tls_context=ctx, require_starttls=True)
        else:
            ssl_context = ctx
    c = Controller(Sink(args), hostname="127.0.0.1", port=port, data_size_limit=10_000_000,
                   ssl_context=ssl_context, **kwargs)
    c.start()
    print("READY %d" % port, flush=True)
    try:
        # Until the test kills us or closes stdin.
        sys.stdin.read()
    finally:
        c.stop()


if __name__ == "__main__":
    main()
