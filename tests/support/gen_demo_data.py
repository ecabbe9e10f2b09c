#!/usr/bin/env python3
"""Generates the demo data in config/data/<community>/*.csv and the GBK test fixture.

Deterministic (seeded), so re-running it reproduces the committed files byte for byte:
    python3 tests/support/gen_demo_data.py

Contacts are obviously fake: phones 138 0000 xxxx, addresses @example.com.
The story, as of 2026-11-21 (the day the demo is run): every household is billed a monthly
property fee (物业费) for 2026, due on the 15th; a third also rent a parking space billed per
quarter (停车费). About 80% of households paid everything due so far; the others (~20%) stopped
paying at some point, so reminders have real arrears to work on. One payment was reversed
(银行退票) and that bill is owed again. Some prepaid water/electricity balances are under their
threshold. Tickets (报修/投诉) through the year, most called back, the recent ones not yet.
The owner surveys of 2026Q2 and 2026Q3 (每季度业主评议表) were handed out on paper on the first
day of the quarter and collected over two weeks: about two households in three answered, a few
with low scores and a comment, so `wuyed report satisfaction` has a quarter to compare with the
one before.
"""

import csv
import datetime as dt
import io
import os
import random

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TODAY = dt.date(2026, 11, 21)

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
GIVEN = ["伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超", "秀兰", "霞", "平", "刚", "桂英", "建华", "海燕", "志强", "晓东", "雪梅", "国平", "春生", "丹"]
ENGLISH = ["Emma Brown", "Lucas Martin", "Olivia Smith", "Noah Wilson", "Sophie Dubois", "Daniel Kim", "Mia Johnson", "Liam O'Connor", "Hannah Müller", "James Taylor"]

COMMUNITIES = {
    "shuipan": {
        "seed": 1,
        "phone_base": 0,
        # 2 buildings x 2 units x 5 floors x 2 flats = 40 households
        "layout": [(b, u, f"{fl}0{r}") for b in (1, 2) for u in (1, 2) for fl in range(1, 6) for r in (1, 2)],
        "fee_per_m2_fen": 250,
        "parking_fen": 45000,
        "staff": {"desk": ["chen-jing"], "fixers": ["weixiu-zhao", "weixiu-sun"]},
    },
    "shijixinzhu": {
        "seed": 2,
        "phone_base": 5000,
        # 4 buildings x 1 unit x 10 floors x 1 flat = 40 households
        "layout": [(b, 1, f"{fl}01") for b in (1, 2, 3, 4) for fl in range(1, 11)],
        "fee_per_m2_fen": 320,
        "parking_fen": 60000,
        "staff": {"desk": ["wang-fang", "liu-yang"], "fixers": ["weixiu-he", "weixiu-luo"]},
    },
}

REPAIRS = ["厨房水管漏水", "卫生间下水道堵塞", "楼道灯不亮", "门禁卡失灵", "电梯异响", "窗户关不严", "空调外机滴水扰邻", "单元门闭门器坏了"]
COMPLAINTS = ["夜间装修噪音", "楼下垃圾未及时清运", "小区内车辆乱停", "宠物粪便无人清理", "绿化带被占用种菜"]
AREAS = ["reception", "repairs", "cleaning", "security", "greenery"]
LOW_COMMENTS = {
    "reception": "前台电话经常没人接",
    "repairs": "报修后等了三天才有人来",
    "cleaning": "楼道好几天没拖地",
    "security": "外来车辆随便进出",
    "greenery": "草坪很久没修剪",
}


def write(path, header, rows, encoding="utf-8"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    with open(path, "wb") as f:
        f.write(buf.getvalue().encode(encoding))


def month_due(m):
    return dt.date(2026, m, 15)


def quarter_due(q):
    return dt.date(2026, 3 * (q - 1) + 1, 15)


def stamp(d, hour, minute=0):
    return f"{d.isoformat()} {hour:02d}:{minute:02d}"


def generate(cid, spec):
    rnd = random.Random(spec["seed"])
    out = os.path.join(ROOT, "config", "data", cid)
    households = []
    owners = []
    phone = spec["phone_base"]
    english_left = 4
    for b, u, room in spec["layout"]:
        hid = f"{b}-{u}-{room}"
        area = rnd.randrange(80, 141)
        households.append((hid, area))
        n_owners = 2 if rnd.random() < 0.25 else 1
        for k in range(n_owners):
            phone += 1
            if english_left and rnd.random() < 0.12:
                english_left -= 1
                name = ENGLISH[(spec["seed"] * 5 + english_left) % len(ENGLISH)]
                lang = "en"
                local = name.lower().replace(" ", ".").replace("'", "").replace("ü", "ue")
            else:
                name = rnd.choice(SURNAMES) + rnd.choice(GIVEN)
                lang = "zh-CN"
                local = f"owner{phone:04d}"
            has_email = lang == "en" or rnd.random() < 0.6
            has_phone = lang == "zh-CN" or rnd.random() < 0.5
            email = f"{local}@example.com" if has_email else ""
            tel = f"1380000{phone:04d}" if has_phone else ""
            pref = "email" if (has_email and (not has_phone or rnd.random() < 0.4)) else "sms"
            owners.append((b, u, room, name, tel, email, lang, pref))
    write(os.path.join(out, "owners.csv"),
          ["building", "unit", "room", "name", "phone", "email", "language", "preferred_contact"], owners)

    bills = []
    payments = []
    ref = 0
    arrears = set(rnd.sample([h for h, _ in households], 8))  # 20% of 40
    parkers = set(rnd.sample([h for h, _ in households], 13))
    methods = ["wechat", "alipay", "bank", "cash"]
    prefix = "SP" if cid == "shuipan" else "SJ"
    for hid, area in households:
        stop = rnd.randrange(6, 11) if hid in arrears else 99  # first month left unpaid
        items = [("property", f"2026-{m:02d}", area * spec["fee_per_m2_fen"], month_due(m), m) for m in range(1, 13)]
        if hid in parkers:
            items += [("parking", f"2026Q{q}", spec["parking_fen"], quarter_due(q), 3 * (q - 1) + 1) for q in range(1, 5)]
        for fee, period, amount, due, month in items:
            bills.append((hid, fee, period, amount, due.isoformat()))
            if due <= TODAY and month < stop:
                ref += 1
                paid = due - dt.timedelta(days=rnd.randrange(0, 12))
                payments.append([f"{prefix}-2026-{ref:05d}", hid, fee, period, amount,
                                 stamp(paid, rnd.randrange(8, 21), rnd.randrange(0, 60)),
                                 rnd.choice(methods), "", ""])
    bills.sort(key=lambda r: (r[0], r[4], r[1]))
    write(os.path.join(out, "bills.csv"), ["household", "fee_type", "period", "amount_fen", "due_date"], bills)
    # One reversal: a bank payment for October bounced, so that bill is owed again.
    bounced = next(p for p in payments if p[3] == "2026-10" and p[1] not in arrears)
    bounced[6] = "bank"
    bounced[7] = "2026-10-20 10:00"
    bounced[8] = "银行退票"
    write(os.path.join(out, "payments.csv"),
          ["reference", "household", "fee_type", "period", "amount_fen", "paid_at", "method", "reversed_at", "reversal_reason"],
          payments)

    balances = []
    for hid, _ in households:
        for util, threshold in (("water", 2000), ("electricity", 5000)):
            low = rnd.random() < 0.15
            bal = rnd.randrange(-500, threshold) if low else rnd.randrange(threshold, threshold * 10)
            balances.append((hid, util, bal, threshold, "2026-11-20 08:00"))
    write(os.path.join(out, "balances.csv"), ["household", "utility", "balance_fen", "threshold_fen", "as_of"], balances)

    tickets = []
    # First receivers (首问负责人) are the customer-service staff of config/communities/<id>.toml;
    # assignees are the maintenance crew, who are not in the config's staff list.
    for i in range(1, 16):
        desk = spec["staff"]["desk"][i % len(spec["staff"]["desk"])]
        opened = dt.date(2026, 1, 5) + dt.timedelta(days=int((i - 1) * 320 / 15) + rnd.randrange(0, 5))
        kind = "complaint" if i % 4 == 0 else "repair"
        summary = rnd.choice(COMPLAINTS if kind == "complaint" else REPAIRS)
        hid = rnd.choice(households)[0]
        fixer = rnd.choice(spec["staff"]["fixers"])
        opened_at = stamp(opened, rnd.randrange(8, 18), rnd.randrange(0, 60))
        assigned_at = stamp(opened, 18, 30)
        closed = opened + dt.timedelta(days=rnd.randrange(1, 4))
        row = [f"{prefix}-T{i:03d}", kind, desk, opened_at, hid, summary, fixer, assigned_at]
        if i == 15:
            row += ["", "", "", "", "", ""]  # still open
        elif i >= 12:
            row += [stamp(closed, 16), "", "", "", "", ""]  # closed, callback not yet done
        else:
            cb = closed + dt.timedelta(days=1)
            score = rnd.choice([5, 5, 4, 4, 3])
            row += [stamp(closed, 16), stamp(cb, 10), desk, "yes", score, ""]
        tickets.append(row)
    write(os.path.join(out, "tickets.csv"),
          ["no", "kind", "first_receiver", "opened_at", "household", "summary", "assignee", "assigned_at",
           "closed_at", "callback_at", "callback_by", "satisfied", "score", "notes"],
          tickets)

    # Surveys: their own random stream, so the files above stay as they were.
    srnd = random.Random(spec["seed"] * 100 + 7)
    surveys = []
    for campaign, opened, mood in (("2026Q2", dt.date(2026, 4, 1), 0.0), ("2026Q3", dt.date(2026, 7, 1), 0.1)):
        for hid, _ in households:
            row = [campaign, hid, stamp(opened, 9)]
            if srnd.random() < 0.65:
                answered = opened + dt.timedelta(days=srnd.randrange(1, 14))
                scores = []
                for area in AREAS:
                    r = srnd.random()
                    if r < 0.06:
                        scores.append("")  # no opinion
                    elif r < 0.14 - mood:
                        scores.append(srnd.choice([1, 2]))
                    elif r < 0.35 - mood:
                        scores.append(3)
                    else:
                        scores.append(srnd.choice([4, 5, 5]))
                low = [a for a, v in zip(AREAS, scores) if v in (1, 2)]
                comment = LOW_COMMENTS[low[0]] if low and srnd.random() < 0.7 else ""
                row += [stamp(answered, srnd.randrange(9, 20))] + scores + [comment]
            else:
                row += ["", "", "", "", "", "", ""]  # did not hand the form back
            surveys.append(row)
    write(os.path.join(out, "surveys.csv"),
          ["campaign", "household", "invited_at", "answered_at"] + AREAS + ["comment"], surveys)
    return owners


def main():
    for cid, spec in COMMUNITIES.items():
        generate(cid, spec)
    # GBK fixture, as Excel on a Chinese Windows saves "CSV": Chinese names must survive.
    # Chinese headers and values, as such a sheet usually has them.
    fixture = [
        ("3", "1", "101", "欧阳明", "13800009901", "", "中文", "短信"),
        ("3", "1", "102", "诸葛亮", "13800009902", "zhuge@example.com", "中文", "邮件"),
        ("3", "2", "201", "龚雪", "13800009903", "", "", ""),
    ]
    write(os.path.join(ROOT, "tests", "fixtures", "owners-gbk.csv"),
          ["楼栋", "单元", "房号", "姓名", "手机", "邮箱", "语言", "联系方式"], fixture,
          encoding="gbk")


if __name__ == "__main__":
    main()
