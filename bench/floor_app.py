"""The floor of SPEC "Running it": a trivial Flask endpoint, served by gunicorn with 2 sync workers."""

from flask import Flask, jsonify

app = Flask(__name__)


@app.get("/")
def ok():
    return jsonify(status="ok")
