"""The yardstick for bench/bench_http.py: a bare Flask app that answers "hello", served
by the same gunicorn settings as the shop. Nothing else: no database, no templates."""

from flask import Flask

app = Flask(__name__)


@app.get("/")
def hello() -> str:
    return "hello"
