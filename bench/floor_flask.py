"""SPEC's floor: a trivial Flask endpoint (`return jsonify(status="ok")`), served by gunicorn with 2 sync workers."""

from flask import Flask, jsonify

app = Flask(__name__)


@app.get("/")
def ok():
    return jsonify(status="ok")
