"""The kiosk API: enrolment, push, pull and heartbeat under /api/v1 (see sync/protocol.py)."""

from __future__ import annotations

from flask import Blueprint, jsonify

from central.app import central_of
from sync.protocol import API_PREFIX, TimeAnswer

api = Blueprint("api", __name__, url_prefix=API_PREFIX)


@api.get("/time")
def time_now():
    answer = TimeAnswer(server_time=central_of().now())
    return jsonify(answer.model_dump(mode="json"))
