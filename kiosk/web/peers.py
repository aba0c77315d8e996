"""GET /peers/events: this kiosk's records for the site's other kiosks (kiosk/peers/serve.py).

Not a page: no session, no PIN; a request must be signed by a kiosk the centre named as a peer
of this site, and the answer is signed by this kiosk.
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, current_app, request

from sync.peers import PEER_EVENTS_PATH

bp = Blueprint("peers", __name__)


@bp.get(PEER_EVENTS_PATH)
def peer_events() -> Response:
    peers = current_app.extensions["kiosk"].peers
    if peers is None:
        abort(404)
    served = peers.server.answer(request.full_path.rstrip("?"), request.args, request.headers)
    return Response(served.body, status=served.status, headers=served.headers)
