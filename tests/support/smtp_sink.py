#!/usr/bin/env python3
"""A loopback SMTP server for firstline's tests that keeps every message it accepts.

    python3 tests/support/smtp_sink.py --host 127.0.0.1 --port N --dir DIR
        [--user U --password P] [--fail-first N]

For the message number SEQ (1, 2, ... in the order accepted) it writes DIR/SEQ.json, the
envelope ({"mail_from": ..., "rcpt_tos": [...]}), then DIR/SEQ.eml, the exact DATA bytes
(dot-unstuffed, CRLF line ends as sent). Both appear by rename, the .json first, so a reader
that sees SEQ.eml also sees its complete envelope.

--user/--password: AUTH PLAIN or LOGIN (over plain text) is required before MAIL FROM.
--fail-first N: the first N messages are refused after their data with
"451 4.3.0 try again later", a transient failure, and not stored.
--deliver ADDR=MAILDIR: a message with ADDR among its recipients is also delivered into the
Maildir MAILDIR (tmp/ then new/, owned like the Maildir), as a local MTA would: this is how
the support mailbox receives its copy of each reply.

Exits 0 on SIGTERM or SIGINT, 3 when aiosmtpd cannot be imported.
"""

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time
import warnings

try:
    from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword
except ImportError as e:
    print(f"smtp_sink: cannot import aiosmtpd ({e}): python3 -m pip install aiosmtpd",
          file=sys.stderr)
    sys.exit(3)


def write_atomically(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)


class Sink:
    def __init__(self, directory, fail_first, deliver):
        self.directory = directory
        self.fail_left = fail_first
        self.deliver = deliver
        self.seq = 0
        for name in os.listdir(directory):
            stem, ext = os.path.splitext(name)
            if ext == ".eml" and stem.isdigit():
                self.seq = max(self.seq, int(stem))

    async def handle_DATA(self, server, session, envelope):
        if self.fail_left > 0:
            self.fail_left -= 1
            return "451 4.3.0 try again later"
        self.seq += 1
        base = os.path.join(self.directory, f"{self.seq:06}")
        meta = {"mail_from": envelope.mail_from, "rcpt_tos": list(envelope.rcpt_tos)}
        write_atomically(base + ".json", json.dumps(meta).encode())
        write_atomically(base + ".eml", envelope.original_content)
        for address, maildir in self.deliver:
            if address.lower() in (r.lower() for r in envelope.rcpt_tos):
                deliver_to_maildir(maildir, envelope.original_content, self.seq)
        return "250 2.0.0 OK"


def make_maildir(maildir):
    """Creates the Maildir's missing folders, owned like the nearest existing parent (the
    IMAP server's mail user), so that the server can still write in them."""
    parent = maildir
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    st = os.stat(parent)
    for path in (maildir, *(os.path.join(maildir, sub) for sub in ("tmp", "new", "cur"))):
        if not os.path.exists(path):
            os.mkdir(path, 0o700)
            os.chown(path, st.st_uid, st.st_gid)


def deliver_to_maildir(maildir, data, seq):
    """Maildir delivery: write under tmp/, rename into new/; the owner is the Maildir's."""
    st = os.stat(maildir)
    name = f"{int(time.time())}.S{seq}P{os.getpid()}.sink"
    tmp = os.path.join(maildir, "tmp", name)
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.chown(tmp, st.st_uid, st.st_gid)
    os.rename(tmp, os.path.join(maildir, "new", name))


class Authenticator:
    def __init__(self, user, password):
        self.user = user.encode()
        self.password = password.encode()

    def __call__(self, server, session, envelope, mechanism, auth_data):
        if (isinstance(auth_data, LoginPassword)
                and auth_data.login == self.user
                and auth_data.password == self.password):
            return AuthResult(success=True, auth_data=auth_data)
        # handled=False lets aiosmtpd send its own 535 reply; anything else hangs the client.
        return AuthResult(success=False, handled=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--fail-first", type=int, default=0)
    parser.add_argument("--deliver", action="append", default=[], metavar="ADDR=MAILDIR")
    args = parser.parse_args()
    if (args.user is None) != (args.password is None):
        parser.error("--user and --password go together")
    os.makedirs(args.dir, exist_ok=True)

    deliver = []
    for spec in args.deliver:
        address, sep, maildir = spec.partition("=")
        if not sep:
            parser.error("--deliver takes ADDR=MAILDIR")
        make_maildir(maildir)
        deliver.append((address, maildir))
    handler = Sink(args.dir, args.fail_first, deliver)
    options = {
        # An explicit name: the default, socket.getfqdn(), may wait on DNS.
        "hostname": "sink.test",
        "ident": "firstline smtp_sink",
        "enable_SMTPUTF8": True,
    }
    if args.user is not None:
        # AUTH over plain text is the point here: no warning about it on stderr.
        warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
        logging.getLogger("mail.log").setLevel(logging.ERROR)
        options.update(
            authenticator=Authenticator(args.user, args.password),
            auth_required=True,
            auth_require_tls=False,
        )

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(
        loop.create_server(lambda: SMTP(handler, loop=loop, **options), args.host, args.port)
    )
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, loop.stop)
    try:
        loop.run_forever()
    finally:
        server.close()
        loop.close()


if __name__ == "__main__":
    main()
