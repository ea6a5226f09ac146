"""The soak's traffic (``bench/soak.py``): buyers and a back office driving the shop over
HTTP on 127.0.0.1 only, each browser with its own cookies, every hop timed and counted.
Every loop ends at the deadline or after a fixed number of steps."""

import json
import random
import re
import threading
import time
import urllib.parse
from collections import Counter
from datetime import datetime
from zoneinfo import ZoneInfo

import pyotp
import requests
from soak_books import PASSWORDS, SMALL_STOCK_SLUG, World

HOST = "127.0.0.1"  # the only address this script sends anything to
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
SHANGHAI = ZoneInfo("Asia/Shanghai")  # the day an offline sale is dated in
MAX_ACTIONS_PER_CLIENT = 100_000  # a bound besides the deadline
# Out of order: TRADE_CLOSED after TRADE_SUCCESS; WAIT_BUYER_PAY arriving late (after
# the order was placed, or paid when none is pending).
NOTICES = ("replayed twice at once", "closed after success", "wait after placed", "forged")

_ID_AFTER = {
    "p",
    "c",
    "orders",
    "households",
    "trace",
    "trades",
    "batches",
    "proposals",
    "products",
    "sales",
    "income",
    "photos",
}
_LITERALS = {"lookup", "upload", "template.csv", "roster", "new", "import", "run"}


def endpoint(url: str) -> str:
    """The route a URL hits, ids and tokens replaced: ``/orders/<id>/return``."""
    parts = urllib.parse.urlsplit(url).path.split("/")
    named = [
        "<id>" if i and parts[i - 1] in _ID_AFTER and seg and seg not in _LITERALS else seg
        for i, seg in enumerate(parts)
    ]
    return "/".join(named) or "/"


class Recorder:
    """Every answer's (kind, endpoint, status, seconds), and what went wrong."""

    def __init__(self):
        self.lock = threading.Lock()
        self.rows: list[tuple[str, str, int, float]] = []
        self.actions: Counter = Counter()
        self.outcomes: Counter = Counter()
        self.anomalies: list[str] = []

    def add(self, kind, label, status, seconds):
        with self.lock:
            self.rows.append((kind, label, status, seconds))

    def action(self, name, outcome=None):
        with self.lock:
            self.actions[name] += 1
            if outcome:
                self.outcomes[f"{name}: {outcome}"] += 1

    def anomaly(self, text):
        with self.lock:
            if len(self.anomalies) < 200:
                self.anomalies.append(text)


class Client:
    """One browser (its own cookies), following redirects itself so that every hop is
    timed and counted; refuses to send anything off 127.0.0.1."""

    def __init__(self, base: str, recorder: Recorder):
        self.base, self.recorder = base, recorder
        self.http = requests.Session()

    def go(self, kind, method, path, data=None, files=None, json_body=None, follow=True):
        url = path if path.startswith("http") else self.base + path
        for _hop in range(10):
            if urllib.parse.urlsplit(url).hostname != HOST:
                raise SystemExit(f"refusing to send a request to {url}")
            started = time.perf_counter()
            try:
                answer = self.http.request(
                    method,
                    url,
                    data=data,
                    files=files,
                    json=json_body,
                    allow_redirects=False,
                    timeout=60,
                )
            except requests.RequestException as error:
                self.recorder.add(kind, endpoint(url), 0, time.perf_counter() - started)
                self.recorder.anomaly(f"{method} {endpoint(url)}: {type(error).__name__}")
                return None
            self.recorder.add(
                kind, endpoint(url), answer.status_code, time.perf_counter() - started
            )
            if not (follow and answer.status_code in (301, 302, 303, 307)):
                return answer
            url = urllib.parse.urljoin(url, answer.headers["Location"])
            if answer.status_code != 307:
                method, data, files, json_body = "GET", None, None, None
        return answer

    def form(self, kind, page, action, fields, files=None):
        """GET ``page`` for a CSRF token, then POST ``fields`` to ``action``."""
        shown = self.go(kind, "GET", page)
        token = CSRF.search(shown.text) if shown is not None else None
        if token is None:
            return None
        return self.go(
            kind, "POST", action, data={"csrf_token": token.group(1), **fields}, files=files
        )


class Soak:
    def __init__(self, base, world: World, known: dict, args, deadline: float):
        self.base, self.world, self.known, self.args = base, world, known, args
        self.deadline = deadline
        self.recorder = Recorder()
        self.lock = threading.Lock()
        self.paid: list[tuple[str, str, int]] = []  # (order_no, token, total_fen)
        self.pending: list[str] = []
        self.refundable: list[tuple[str, str, int]] = []
        self.batches = 0
        self.notices = 0
        self.last_sales: tuple[dict, bytes] | None = None

    def live(self) -> bool:
        return time.monotonic() < self.deadline

    # buyers ---------------------------------------------------------------------------

    def buyer(self, number: int) -> None:
        rng = random.Random(self.args.seed * 1000 + number)
        actions = [
            (self.browse, 25),
            (self.api_reads, 15),
            (self.cart, 8),
            (self.checkout_html, 12),
            (self.checkout_api, 12),
            (self.notifications, 20),
        ]
        functions, weights = zip(*actions, strict=True)
        for _step in range(MAX_ACTIONS_PER_CLIENT):
            if not self.live():
                return
            rng.choices(functions, weights)[0](rng)

    def browse(self, rng) -> None:
        with self.lock:
            token = rng.choice(self.paid)[1] if self.paid else None
        _pid, slug, _name, _price = rng.choice(self.known["products"])
        pages = [
            "/",
            f"/p/{slug}",
            f"/c/{rng.choice(self.known['categories'])}",
            "/search?q=果酒",
            "/board",
            "/results",
            f"/households/{rng.choice(self.known['households'])}",
            "/open-data",
            "/open-data/love-board.csv",
            "/open-data/households.csv",
            "/changes",
            "/readyz",
            f"/qr/products/{slug}.svg",
        ]
        if token:
            pages.append(f"/trace/{token}")
        client = Client(self.base, self.recorder)
        for path in rng.sample(pages, 3):
            client.go("browse", "GET", path)
        self.recorder.action("browse")

    def api_reads(self, rng) -> None:
        with self.lock:
            token = rng.choice(self.paid)[1] if self.paid else None
        paths = [
            "/api/v1/products",
            "/api/v1/board",
            "/api/v1/households",
            "/api/v1/ledger/head",
            "/api/v1/changes",
        ] + ([f"/api/v1/orders/{token}"] if token else [])
        client = Client(self.base, self.recorder)
        for path in rng.sample(paths, 2):
            client.go("api", "GET", path)
        self.recorder.action("api reads")

    def _fill_cart(self, client, rng, lines: int) -> bool:
        for pid, slug, _name, _price in rng.sample(self.known["products"], lines):
            done = client.form(
                "cart",
                f"/p/{slug}",
                "/cart/add",
                {"product_id": pid, "quantity": rng.randint(1, 2)},
            )
            if done is None:
                return False
        return True

    def cart(self, rng) -> None:
        client = Client(self.base, self.recorder)
        if self._fill_cart(client, rng, 2):
            pid = rng.choice(self.known["products"])[0]
            client.form("cart", "/cart", "/cart/update", {"product_id": pid, "quantity": 3})
            client.form("cart", "/cart", "/cart/remove", {"product_id": pid})
        self.recorder.action("cart")

    def _buyer_fields(self, rng) -> dict:
        n = rng.randint(0, 99_999_999)
        return {
            "name": f"浸泡{n % 1000}",
            "phone": f"13{n % 10}{n:08d}",
            "address": f"西安市雁塔区科技路{n % 500}号",
            "board_display": rng.choice(["masked", "anonymous"]),
        }

    def checkout_html(self, rng) -> None:
        client = Client(self.base, self.recorder)
        if not self._fill_cart(client, rng, rng.randint(1, 2)):
            return self.recorder.action("checkout (HTML)", "no cart")
        cashier = client.form("checkout", "/checkout", "/checkout", self._buyer_fields(rng))
        self.recorder.action("checkout (HTML)", self._pay(client, cashier, rng))

    def checkout_api(self, rng) -> None:
        client = Client(self.base, self.recorder)
        big = rng.random() < 0.2  # above the refund approval threshold, for four eyes
        picks = (
            [self.known["products"][0]]
            if big
            else rng.sample(self.known["products"], rng.randint(1, 2))
        )
        fields = self._buyer_fields(rng)
        body = {
            "items": [
                {"product_id": p[0], "quantity": 4 if big else rng.randint(1, 3)} for p in picks
            ],
            "buyer": {
                "name": fields["name"],
                "phone": fields["phone"],
                "anonymous": rng.random() < 0.5,
            },
            "shipping": {"address": fields["address"]},
            "channel": rng.choice(["pc", "wap"]),
        }
        placed = client.go("checkout", "POST", "/api/v1/orders", json_body=body)
        if placed is None or placed.status_code != 201:
            code = placed.status_code if placed is not None else "no answer"
            return self.recorder.action("checkout (API)", f"refused {code}")
        cashier = client.go("checkout", "GET", placed.json()["pay_url"])
        self.recorder.action("checkout (API)", self._pay(client, cashier, rng))

    def _pay(self, client, cashier, rng) -> str:
        """At the sandbox cashier: press Pay (or leave, now and then); returns the outcome."""
        if (
            cashier is None
            or "/sandbox/alipay/gateway.do" not in cashier.url
            or cashier.status_code != 200
        ):
            return "refused (cart or stock)"
        biz = json.loads(
            urllib.parse.parse_qs(urllib.parse.urlsplit(cashier.url).query)["biz_content"][0]
        )
        order_no = biz["out_trade_no"]
        if rng.random() < 0.05:
            with self.lock:
                self.pending.append(order_no)
            return "abandoned"
        form = re.search(r'<form[^>]*action="([^"]*/pay)"[^>]*>(.*?)</form>', cashier.text, re.S)
        fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', form.group(2)))
        back = client.go("pay", "POST", form.group(1), data=fields)
        if back is None or back.status_code != 200 or "/return" not in back.url:
            return "payment not confirmed"
        token = urllib.parse.urlsplit(back.url).path.split("/")[2]
        with self.lock:
            self.paid.append((order_no, token, wire_fen(biz["total_amount"])))
            self.refundable.append(self.paid[-1])
        return "paid"

    def notifications(self, rng) -> None:
        """What Alipay (or someone pretending) may send at any time."""
        with self.lock:
            paid = rng.choice(self.paid) if self.paid else None
            pending = rng.choice(self.pending) if self.pending else None
            if paid is None:
                return
            which = NOTICES[self.notices % len(NOTICES)]  # in turn: a short soak sends each
            self.notices += 1
        order_no = pending if which == "wait after placed" and pending else paid[0]
        status = {
            "closed after success": "TRADE_CLOSED",
            "wait after placed": "WAIT_BUYER_PAY",
            "replayed twice at once": "TRADE_SUCCESS",
            "forged": "TRADE_SUCCESS",
        }[which]
        params = self.world.notification(order_no, status)
        if params is None:  # abandoned before the cashier opened the trade
            return
        expected = "success"
        if which == "forged":
            params["total_amount"], expected = "0.01", "fail"
        copies = 2 if which == "replayed twice at once" else 1
        answers = []

        def send():
            client = Client(self.base, self.recorder)
            answers.append(client.go("notify", "POST", "/payments/alipay/notify", data=params))

        threads = [threading.Thread(target=send) for _ in range(copies)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        for answer in answers:
            got = answer.text.strip() if answer is not None else "no answer"
            if got != expected:
                self.recorder.anomaly(
                    f"notification {which} for {order_no}: {got!r}, not {expected!r}"
                )
        self.recorder.action("notification", which)

    # back office ----------------------------------------------------------------------

    def login(self, username: str) -> Client:
        client = Client(self.base, self.recorder)
        client.form(
            "login", "/login", "/login", {"username": username, "password": PASSWORDS[username]}
        )
        done = client.form(
            "login",
            "/login/code",
            "/login/code",
            {"code": pyotp.TOTP(self.known["secrets"][username]).now()},
        )
        if done is None or not ("/console" in done.url or "/admin" in done.url):
            raise SystemExit(f"{username} could not log in (ended at {done.url if done else None})")
        return client

    def back_office(self) -> None:
        """Staff and admins at their desks, in a fixed round so that even a short soak
        does each of their jobs: refunds (part and whole, alternately), an offline
        sales file, an income file, console pages; a household payout now and then."""
        rng = random.Random(self.args.seed)
        staff, admin, checker = (self.login(name) for name in ("village", "admin", "checker"))
        round_ = [
            lambda: self.refund(admin, checker, rng, whole=False),
            lambda: self.offline(staff, rng),
            lambda: self.income(staff, rng),
            lambda: self.refund(admin, checker, rng, whole=True),
            lambda: self.console(admin, rng),
        ]
        last_payout, turn = time.monotonic(), 0
        for _step in range(MAX_ACTIONS_PER_CLIENT):
            if not self.live():
                return
            if time.monotonic() - last_payout > self.args.payout_every:
                self.payout(admin, checker, rng)
                last_payout = time.monotonic()
            if round_[turn % len(round_)]() is False:  # nothing paid to refund yet: wait
                time.sleep(0.5)
            else:
                turn += 1
                time.sleep(0.05)  # people at a desk: the buyers are the load

    def _approve(self, checker: Client, answer) -> str:
        """The second admin approves the proposal ``answer`` landed on."""
        if answer is None or "/admin/proposals/" not in answer.url:
            return "not proposed"
        page = urllib.parse.urlsplit(answer.url).path
        done = checker.form("approval", page, page + "/approve", {})
        return "approved" if done is not None and done.status_code == 200 else "approval failed"

    def refund(self, admin: Client, checker: Client, rng, whole: bool) -> bool | None:
        """Part of an order (no goods back, under the threshold: direct), or all of it
        with its goods back in stock — an order above the threshold when there is one,
        so the other admin must approve it."""
        threshold = self.args.approval_threshold_fen
        with self.lock:
            big = [n for n, (_o, _t, total) in enumerate(self.refundable) if total > threshold]
            if not self.refundable:
                return False
            pick = rng.choice(big) if whole and big else rng.randrange(len(self.refundable))
            order_no, _token, total = self.refundable.pop(pick)
        page = f"/console/orders/{order_no}"
        if not whole:
            fen = max(1, min(total // 10, threshold))
            fields = {"amount": f"{fen / 100:.2f}", "reason": "浸泡测试：部分退款"}
        else:
            fen = total
            fields = {"amount": f"{fen / 100:.2f}", "reason": "浸泡测试：全额退款", "restock": "y"}
        answer = admin.form("refund", page, page + "/refund", fields)
        if fen > threshold:
            self.recorder.action("refund", "above threshold: " + self._approve(checker, answer))
        else:
            self.recorder.action("refund", "direct" if answer is not None else "no answer")

    def offline(self, staff: Client, rng) -> None:
        self.batches += 1
        products = [p for p in self.known["products"] if p[1] != SMALL_STOCK_SLUG]
        today = datetime.now(SHANGHAI).date().isoformat()
        rows = [
            "日期,商品,数量,单价(元),金额(元),渠道,活动/场次,付款方式,购买人,爱心榜展示,单位,单号"
        ]
        for n in range(rng.randint(1, 4)):
            _pid, _slug, name, price = rng.choice(products)
            quantity = rng.randint(1, 3)
            rows.append(
                f"{today},{name},{quantity},{price / 100:.2f},,,,现金,,匿名,,S{self.batches}-{n}"
            )
        upload = (
            {
                "channel": rng.choice(["event", "live", "hall"]),
                "session_name": f"浸泡{self.batches}",
            },
            ("\n".join(rows) + "\n").encode(),
        )
        if self.last_sales and rng.random() < 0.15:  # the same file again: nothing new
            upload = self.last_sales
        self.last_sales = upload
        self._upload_and_confirm(
            staff,
            "offline sales",
            "/console/offline/",
            "/console/offline/sales/upload",
            *upload,
            rng,
        )

    def income(self, staff: Client, rng) -> None:
        self.batches += 1
        period = f"{2030 + self.batches // 12}-{self.batches % 12 + 1:02d}"
        rows = ["户编码,类别,期间,数量,单价(元),金额(元),付款方,发放日期,备注"]
        for code in rng.sample(self.known["households"], rng.randint(1, 5)):
            rows.append(
                f"{code},务工工资,{period},{rng.randint(1, 5)},{rng.randint(80, 150)},,,,浸泡测试"
            )
        self._upload_and_confirm(
            staff,
            "income",
            "/console/offline/income",
            "/console/offline/income/upload",
            {"payer": ""},
            ("\n".join(rows) + "\n").encode(),
            rng,
        )

    def _upload_and_confirm(self, staff, name, page, action, fields, data, rng) -> None:
        batch = staff.form(
            "offline", page, action, fields, files={"file": ("soak.csv", data, "text/csv")}
        )
        if batch is None or "/console/offline/batches/" not in batch.url:
            return self.recorder.action(name, "upload refused")
        confirm = urllib.parse.urlsplit(batch.url).path + "/confirm"
        token = CSRF.search(batch.text).group(1)
        for _time in range(2 if rng.random() < 0.2 else 1):  # a double click: posted once
            staff.go("offline", "POST", confirm, data={"csrf_token": token})
        self.recorder.action(name, "confirmed")

    def payout(self, admin: Client, checker: Client, rng) -> None:
        """One household paid what it is owed, four eyes: proposed, then approved. (A
        whole batch is one request that pays every household due, one transfer after
        another: the demo's year makes that ~110 transfers, minutes in one request.)"""
        code = rng.choice(self.known["households"])
        answer = admin.form("payout", "/admin/payouts", f"/admin/payouts/households/{code}", {})
        self.recorder.action("payout", self._approve(checker, answer))

    def console(self, admin: Client, rng) -> None:
        for path in rng.sample(
            [
                "/console/",
                "/console/orders",
                "/admin/ledger",
                "/admin/households",
                "/console/offline/reports",
                "/admin/audit/",
                "/admin/proposals/",
            ],
            2,
        ):
            admin.go("console", "GET", path)
        self.recorder.action("console pages")


# --- the run ---------------------------------------------------------------------------------


def wire_fen(yuan: str) -> int:
    """Alipay's "158.00" as fen, without floats."""
    whole, _dot, cents = yuan.partition(".")
    return int(whole) * 100 + int((cents + "00")[:2])
