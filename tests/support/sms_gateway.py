#!/usr/bin/env python3
"""A real HTTP server standing in for an SMS provider, for wuye's delivery tests and benchmark.

It checks each request the way the provider does, with its own implementation of the provider's
documented signing (independent of wuye's), answers as the provider documents, and appends what
it received to <out>/requests.jsonl: method, path, headers, body, and "verified" with the reason.

  --mode aliyun|tencent|twilio|webhook
  --key-id ID --secret SECRET     the credentials the client must sign with
  --answer ok|invalid_number|limit|503   what to answer once the request verified
  --quiet                          do not record requests (benchmark)
  --fail-first N --fail-status CODE   answer the first N requests with HTTP CODE (429, 500...)
                                   before looking at them, as an overloaded gateway does

Aliyun:  https://help.aliyun.com/document_detail/101343.html (SendSms), signature v1
         https://help.aliyun.com/document_detail/315526.html (RPC signature)
Tencent: https://cloud.tencent.com/document/api/382/55981 (SendSms 2021-01-11)
         https://cloud.tencent.com/document/api/382/52072 (TC3-HMAC-SHA256)
Twilio:  https://www.twilio.com/docs/messaging/api/message-resource#create-a-message-resource
"""
import argparse
import base64
import hashlib
import hmac
import json
import os
import socket
import sys
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, quote

ARGS = None
LOCK = threading.Lock()
SEQ = [0]
# What SendSms accepted: Aliyun's for QuerySendDetails, Tencent's receipts for PullSmsSendStatusByPhoneNumber.
SENT = []


def aliyun_verify(body):
    params = dict(parse_qsl(body, keep_blank_values=True))
    sig = params.pop("Signature", None)
    if params.get("AccessKeyId") != ARGS.key_id:
        return False, "InvalidAccessKeyId.NotFound", params
    enc = lambda s: quote(s, safe="~")
    canonical = "&".join("%s=%s" % (enc(k), enc(v)) for k, v in sorted(params.items()))
    to_sign = "POST&%2F&" + enc(canonical)
    want = base64.b64encode(
        hmac.new((ARGS.secret + "&").encode(), to_sign.encode(), hashlib.sha1).digest()
    ).decode()
    if sig != want:
        return False, "SignatureDoesNotMatch", params
    if params.get("Action") not in ("SendSms", "QuerySendDetails"):
        return False, "InvalidAction", params
    for k, v in [("Version", "2017-05-25"), ("SignatureMethod", "HMAC-SHA1"),
                 ("SignatureVersion", "1.0"), ("Format", "JSON")]:
        if params.get(k) != v:
            return False, "MissingParameter %s" % k, params
    return True, "signature v1 matches", params


def tencent_verify(headers, body):
    auth = headers.get("Authorization", "")
    try:
        algo, rest = auth.split(" ", 1)
        fields = dict(x.strip().split("=", 1) for x in rest.split(","))
        cred = fields["Credential"].split("/")
    except Exception:
        return False, "AuthFailure.InvalidAuthorization"
    if algo != "TC3-HMAC-SHA256" or cred[0] != ARGS.key_id:
        return False, "AuthFailure.SecretIdNotFound"
    ts = int(headers["X-TC-Timestamp"])
    date = datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d")
    if cred[1:] != [date, "sms", "tc3_request"]:
        return False, "AuthFailure.InvalidAuthorization credential scope"
    signed = fields["SignedHeaders"].split(";")
    canonical_headers = "".join("%s:%s\n" % (h, headers[h].lower() if h == "x-tc-action" else headers[h]) for h in signed)
    canonical_request = "\n".join([
        "POST", "/", "", canonical_headers, fields["SignedHeaders"],
        hashlib.sha256(body.encode()).hexdigest(),
    ])
    to_sign = "\n".join(["TC3-HMAC-SHA256", str(ts), "%s/sms/tc3_request" % date,
                         hashlib.sha256(canonical_request.encode()).hexdigest()])
    def h(key, msg):
        return hmac.new(key, msg.encode(), hashlib.sha256).digest()
    k = h(h(h(("TC3" + ARGS.secret).encode(), date), "sms"), "tc3_request")
    want = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    if fields["Signature"] != want:
        return False, "AuthFailure.SignatureFailure"
    if headers.get("X-TC-Action") not in ("SendSms", "PullSmsSendStatusByPhoneNumber") \
            or headers.get("X-TC-Version") != "2021-01-11":
        return False, "InvalidAction"
    return True, "TC3-HMAC-SHA256 matches"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def reply(self, status, obj):
        data = json.dumps(obj, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n).decode("utf-8")
        headers = {k: v for k, v in self.headers.items()}
        # http.server keeps header case as sent; look them up case-insensitively below.
        hi = {k.lower(): v for k, v in headers.items()}
        with LOCK:
            SEQ[0] += 1
            seq = SEQ[0]
        mode, answer = ARGS.mode, ARGS.answer
        verified, why = False, ""
        status, obj = 500, {}
        if seq <= ARGS.fail_first:
            why = "failing the first %d requests" % ARGS.fail_first
            status, obj = ARGS.fail_status, {"error": "try again later (test gateway)"}
        elif mode == "aliyun":
            verified, why, params = aliyun_verify(body)
            if not verified:
                status, obj = 400, {"Code": why, "Message": "Specified signature is not matched with our calculation.", "RequestId": "R%d" % seq}
            elif params.get("Action") == "QuerySendDetails":
                found = [d for d in SENT if d["PhoneNum"] == params.get("PhoneNumber")]
                status, obj = 200, {"Code": "OK", "Message": "OK", "RequestId": "R%d" % seq,
                                    "TotalCount": len(found),
                                    "SmsSendDetailDTOs": {"SmsSendDetailDTO": found}}
            elif answer == "invalid_number":
                status, obj = 200, {"Code": "isv.MOBILE_NUMBER_ILLEGAL", "Message": "非法手机号", "RequestId": "R%d" % seq}
            elif answer == "limit":
                status, obj = 200, {"Code": "isv.BUSINESS_LIMIT_CONTROL", "Message": "触发号码天级流控", "RequestId": "R%d" % seq}
            else:
                status, obj = 200, {"Code": "OK", "Message": "OK", "BizId": "9006197469364984^%d" % seq, "RequestId": "R%d" % seq}
                with LOCK:
                    SENT.append({"PhoneNum": params["PhoneNumbers"], "SendStatus": 3, "ErrCode": "DELIVERED",
                                 "TemplateCode": params["TemplateCode"], "OutId": params.get("OutId", ""),
                                 "BizId": obj["BizId"], "SendDate": params["Timestamp"]})
        elif mode == "tencent":
            th = {"Authorization": hi.get("authorization", ""), "X-TC-Timestamp": hi.get("x-tc-timestamp", "0"),
                  "X-TC-Action": hi.get("x-tc-action", ""), "X-TC-Version": hi.get("x-tc-version", ""),
                  "content-type": hi.get("content-type", ""), "host": hi.get("host", ""),
                  "x-tc-action": hi.get("x-tc-action", "")}
            verified, why = tencent_verify(th, body)
            req = json.loads(body) if verified else {}
            if not verified:
                status, obj = 200, {"Response": {"Error": {"Code": why, "Message": "The provided credentials could not be validated."}, "RequestId": "R%d" % seq}}
            elif th["X-TC-Action"] == "PullSmsSendStatusByPhoneNumber":
                # Delivery receipts of one number in [BeginTime, EndTime], Offset/Limit paged.
                found = [d for d in SENT if d["PhoneNumber"] == req.get("PhoneNumber")
                         and req.get("BeginTime", 0) <= d["at"] <= req.get("EndTime", d["at"])]
                page = found[req.get("Offset", 0):req.get("Offset", 0) + req.get("Limit", 100)]
                status, obj = 200, {"Response": {"PullSmsSendStatusSet": [
                    {k: v for k, v in d.items() if k != "at"} for d in page], "RequestId": "R%d" % seq}}
            else:
                code, msg = "Ok", "send success"
                if answer == "invalid_number":
                    code, msg = "InvalidParameterValue.IncorrectPhoneNumber", "incorrect phone number"
                elif answer == "limit":
                    code, msg = "LimitExceeded.PhoneNumberThirtySecondLimit", "the number of SMS messages sent from a single mobile number within 30 seconds exceeds the upper limit"
                status, obj = 200, {"Response": {"SendStatusSet": [{
                    "SerialNo": "5000:10457106691570%d" % seq, "PhoneNumber": req["PhoneNumberSet"][0], "Fee": 1,
                    "SessionContext": req.get("SessionContext", ""), "Code": code, "Message": msg, "IsoCode": "CN"}],
                    "RequestId": "R%d" % seq}}
                if code == "Ok":
                    phone = req["PhoneNumberSet"][0]
                    with LOCK:
                        SENT.append({"at": int(th["X-TC-Timestamp"]), "UserReceiveTime": "2026-03-02 09:00:05",
                                     "CountryCode": "86", "SubscriberNumber": phone[3:], "PhoneNumber": phone,
                                     "SerialNo": "5000:10457106691570%d" % seq, "ReportStatus": "SUCCESS",
                                     "Description": "DELIVRD", "SessionContext": req.get("SessionContext", "")})
        elif mode == "twilio":
            want = "Basic " + base64.b64encode(("%s:%s" % (ARGS.key_id, ARGS.secret)).encode()).decode()
            form = dict(parse_qsl(body, keep_blank_values=True))
            if hi.get("authorization") != want or self.path != "/2010-04-01/Accounts/%s/Messages.json" % ARGS.key_id:
                why = "basic auth or path wrong"
                status, obj = 401, {"code": 20003, "message": "Authenticate", "status": 401}
            elif not hi.get("content-type", "").startswith("application/x-www-form-urlencoded"):
                why = "not form-encoded"
                status, obj = 400, {"code": 21000, "message": "bad content type", "status": 400}
            else:
                verified, why = True, "basic auth and form match"
                if answer == "invalid_number":
                    status, obj = 400, {"code": 21211, "message": "The 'To' number %s is not a valid phone number." % form.get("To"), "status": 400}
                elif answer == "503":
                    status, obj = 503, {"code": 20503, "message": "Service unavailable", "status": 503}
                else:
                    status, obj = 201, {"sid": "SM%032d" % seq, "status": "queued", "to": form.get("To"), "body": form.get("Body")}
        else:
            verified = hi.get("idempotency-key") is not None and hi.get("content-type", "").startswith("application/json")
            why = "idempotency key and JSON" if verified else "missing Idempotency-Key or not JSON"
            if answer == "503":
                status, obj = 503, {"error": "busy"}
            elif verified:
                status, obj = 200, {"id": "gw-%d" % seq}
            else:
                status, obj = 400, {"error": why}
        if not ARGS.quiet:
            with LOCK:
                with open(os.path.join(ARGS.out, "requests.jsonl"), "a") as f:
                    f.write(json.dumps({"seq": seq, "method": self.command, "path": self.path, "headers": headers,
                                        "body": body, "verified": verified, "why": why, "status": status},
                                       ensure_ascii=False) + "\n")
        self.reply(status, obj)


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--out", default=".")
    p.add_argument("--mode", default="webhook")
    p.add_argument("--key-id", default="")
    p.add_argument("--secret", default="")
    p.add_argument("--answer", default="ok")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--fail-first", type=int, default=0)
    p.add_argument("--fail-status", type=int, default=503)
    ARGS = p.parse_args()
    os.makedirs(ARGS.out, exist_ok=True)
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    srv.request_queue_size = 256
    print("READY %d" % srv.server_address[1], flush=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    sys.stdin.read()
    srv.shutdown()


if __name__ == "__main__":
    main()
