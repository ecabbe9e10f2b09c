#!/usr/bin/env python3
"""Parses .eml files with Python's standard `email` package and prints one JSON object per file:
the decoded headers and the MIME structure, so tests compare against the original text."""
import json
import sys
from email import policy
from email.parser import BytesParser

for path in sys.argv[1:]:
    with open(path, "rb") as f:
        msg = BytesParser(policy=policy.default).parse(f)
    frm = msg["From"].addresses[0]
    to = msg["To"].addresses[0]
    parts = []
    for part in msg.walk():
        if part.get_content_maintype() != "multipart":
            parts.append({"type": part.get_content_type(), "body": part.get_content()})
    print(json.dumps({
        "file": path,
        "subject": str(msg["Subject"]),
        "from_name": frm.display_name,
        "from_addr": frm.addr_spec,
        "to_name": to.display_name,
        "to_addr": to.addr_spec,
        "message_id": str(msg["Message-ID"]),
        "date": str(msg["Date"]) if msg["Date"] else None,
        "list_unsubscribe": str(msg["List-Unsubscribe"]) if msg["List-Unsubscribe"] else None,
        "content_type": msg.get_content_type(),
        "parts": parts,
    }, ensure_ascii=False))
