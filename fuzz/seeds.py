#!/usr/bin/env python3
"""Writes fuzz/seeds/<target>/seed-* from the example configuration and the demo CSVs.

The seeds are committed (the unit tests in daemon/src/fuzzing.rs replay them without libFuzzer);
run this again after config/ changes. Inputs that once crashed are committed next to them as
crash-* and are not touched here. The formats are described in daemon/src/fuzzing.rs.
"""
import pathlib
import re
import struct

ROOT = pathlib.Path(__file__).resolve().parent.parent
CONFIG = ROOT / "config"
SEEDS = ROOT / "fuzz" / "seeds"


def write(target, name, data):
    out = SEEDS / target
    out.mkdir(parents=True, exist_ok=True)
    (out / f"seed-{name}").write_bytes(data)


def daemon_file(example_delivery):
    text = (CONFIG / "wuyed.toml").read_text()
    # The fuzz fixture's own directories (daemon/src/fuzzing.rs: config_fixture).
    text = text.replace('data_dir = "../data"', 'data_dir = "data"')
    text = text.replace('dir = "../target/wasm32-wasip2/release"', 'dir = "plugins"')
    if example_delivery:
        # The commented example of [delivery], uncommented as its own comment explains, with
        # inline secrets so that nothing depends on the environment.
        start = text.index("# [delivery]\n")
        body = re.sub(r"^# ?", "", text[start:], flags=re.M)
        body = re.sub(r"\{ env = \"[A-Z_]+\" \}", '"fuzz-secret-value"', body)
        text = text[:start] + body
    return text.encode()


def config_seeds():
    for community in sorted((CONFIG / "communities").glob("*.toml")):
        write("config", community.stem, daemon_file(False) + b"\0" + community.read_bytes())
        write("config", community.stem + "-delivery",
              daemon_file(True) + b"\0" + community.read_bytes())
    write("config", "daemon-only", daemon_file(False))


KINDS = ["owners", "bills", "payments", "balances", "tickets", "surveys"]


def csv_seeds():
    for community in sorted((CONFIG / "data").iterdir()):
        for i, kind in enumerate(KINDS):
            path = community / f"{kind}.csv"
            if path.exists():
                lines = path.read_bytes().splitlines(keepends=True)
                # The header and a few rows: the fuzzer mutates small files far faster.
                write("csv_import", f"{community.name}-{kind}", bytes([i]) + b"".join(lines[:6]))
    # The Chinese headers an office spreadsheet has, in GBK as Excel writes it.
    gbk = "楼栋,单元,房号,姓名,手机\n9,1,101,张伟,13800000001\n".encode("gbk")
    write("csv_import", "owners-gbk", bytes([0]) + gbk)


CRON = [
    (0, "0 10 * * *"), (0, "*/30 8-20 * * *"), (0, "0 9 1 1,4,7,10 *"), (0, "0 9 1 3,9 *"),
    (0, "0 8 * * *"), (2, "30 2 * * *"), (3, "0 1 * * SUN"), (4, "0,30 1-3 * * *"),
    (5, "0 0 30 12 *"), (6, "0 0 1,15 * MON"), (1, "*/20 */15 9-17 * FEB,AUG MON-FRI"),
    (0, "0 5,35 0,12 */10 MAR-MAY *"), (1, "@weekly"), (0, "0 0 29 2 *"), (7, "15 10-20/5 * * 5-7"),
]


def cron_seeds():
    # Starts: 2026-11-22, inside a DST change (2026-03-08 in New York), 2099-12-31.
    starts = [846_288_000, 826_419_600, 3_155_673_599]
    for i, (zone, expr) in enumerate(CRON):
        head = bytes([zone]) + struct.pack("<I", starts[i % len(starts)])
        write("cron", f"{i:02}", head + expr.encode())


HTTP = [
    (0, 0, '{"no":"T-1","kind":"repair","first_receiver":"chen-jing","household":"1-1-101","summary":"楼道灯不亮"}'),
    (1, 0, '{"closed_at":"2026-02-01T09:00:00+08:00"}'),
    (2, 0, '{"callback_at":"2026-02-01T10:00:00+08:00","callback_by":"chen-jing","satisfied":true,"score":5}'),
    (3, 0, '{"reference":"P-1","household":"1-1-101","fee_type":"property","period":"2026-01","amount_fen":32000,"paid_at":"2026-02-01T09:30:00+08:00","method":"bank"}'),
    (4, 1, '{"reason":"bounced"}'),
    (5, 0, '{"title":"邻里节","starts_at":"2026-05-16T09:30:00+08:00","location":"会所"}'),
    (6, 0, '{"household":"1-1-101","attendees":2}'),
    (7, 0, '{"attendees":40,"notes":"rain"}'),
    (8, 0, '{"household":"1-1-101","until":"2026-06-30"}'),
    (9, 0, ''),
    (10, 0, '{"reception":5,"repairs":4,"cleaning":3,"security":5,"greenery":4,"comment":"谢谢"}'),
    (11, 2, 'reception=5&repairs=4&comment=ok'),
    (12, 2, 'attendees=2'),
    (3, 4, '{"reference":"P-2","household":"1-1-101","fee_type":"property","period":"2026-01","amount_fen":1}'),
]


def http_seeds():
    for i, (endpoint, variant, body) in enumerate(HTTP):
        write("http_body", f"{i:02}", bytes([endpoint, variant]) + body.encode())
    # One input playing a desk's day: open, close, call back, pay, reverse.
    chain = b"\0".join(bytes([e, v]) + b.encode() for e, v, b in HTTP[:5])
    write("http_body", "sequence", chain)


if __name__ == "__main__":
    config_seeds()
    csv_seeds()
    cron_seeds()
    http_seeds()
