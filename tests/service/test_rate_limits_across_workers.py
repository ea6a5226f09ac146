"""With ``REDIS_URL`` set, a rate limit is one count for the whole service, not one per
gunicorn worker: the request over the limit is refused whichever worker takes it."""

import re
import urllib.error
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar

from tests.gunicorn_server import app_environment, gunicorn, redis_server

LIMIT = 4
MAX_ATTEMPTS = 60  # bounded: stop once both workers have refused a request


def _opener():
    return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))


def _fetch(opener, url: str, data: dict | None = None) -> tuple[int, str, str]:
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    try:
        with opener.open(urllib.request.Request(url, data=body), timeout=20) as answer:
            return answer.status, answer.headers["X-Request-ID"], answer.read().decode()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.headers["X-Request-ID"], refused.read().decode()


def _pid_of(log: str, request_id: str) -> str:
    found = re.search(rf"\[{re.escape(request_id)}\] .* pid=(\d+)", log)
    assert found, f"no access line for {request_id}"
    return found.group(1)


def test_a_login_limit_holds_across_two_workers_with_redis(app, tmp_path):
    env = app_environment(app, LOGIN_RATE_LIMIT=f"{LIMIT} per hour")
    with redis_server() as redis_url, gunicorn({**env, "REDIS_URL": redis_url}) as server:
        browser = _opener()
        status, _, page = _fetch(browser, server.url + "/login")
        assert status == 200
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
        token = token or re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert token, "login form has no CSRF token"
        form = {"csrf_token": token.group(1), "username": "nobody", "password": "wrong-guess"}

        answers = []  # (status, request id)
        refused_by: set[str] = set()
        for _attempt in range(MAX_ATTEMPTS):
            status, request_id, _body = _fetch(browser, server.url + "/login", form)
            answers.append((status, request_id))
            if status == 429:
                refused_by.add(_pid_of(server.log(), request_id))
                if len(refused_by) == 2:
                    break
        statuses = [status for status, _ in answers]
        log = server.log()

    assert statuses[:LIMIT] == [200] * LIMIT, statuses
    assert set(statuses[LIMIT:]) == {429}, statuses
    served_by = {_pid_of(log, request_id) for _, request_id in answers}
    assert len(served_by) == 2, "one worker took every request: nothing was proven"
    assert len(refused_by) == 2, f"only worker(s) {refused_by} refused in {len(answers)} tries"
