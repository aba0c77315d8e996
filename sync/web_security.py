"""What both apps' web pages share for safety: token comparison and the security headers.

It lives in `sync/` because the kiosk and the centre both need it and may not import each other.

Tokens: `hmac.compare_digest` on two `str` raises TypeError when either holds a non-ASCII
character, so a CSRF or screen token of "é" (any browser, any attacker can send one) was an HTTP
500. Tokens are compared as UTF-8 bytes instead, which compare_digest takes whatever they hold.

Headers: every answer of both apps carries them (pages, JSON, errors, files); pages that show
people's data or a login also say `Cache-Control: no-store`, so a shared phone's back button or a
proxy on the site network keeps no copy.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

# No inline script or style anywhere (the pages keep their scripts and styles in files; data for a
# script travels in a <script type="application/json"> block, which is never run), nothing
# framed, nothing framing us, forms only to ourselves.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; media-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)

SECURITY_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "geolocation=(), microphone=(), payment=(), usb=()",
}


def _utf8(text: str) -> bytes:
    # surrogatepass: a lone surrogate (JSON can carry one) still compares, as bytes no token has.
    return text.encode("utf-8", "surrogatepass")


def tokens_equal(expected: str | bytes | None, sent: str | bytes | None) -> bool:
    """Constant-time comparison of a secret token with what a client sent, any characters.

    False when either is empty or missing: an empty expected token must never match an empty
    sent one.
    """
    if not expected or not sent:
        return False
    left = expected if isinstance(expected, bytes) else _utf8(str(expected))
    right = sent if isinstance(sent, bytes) else _utf8(str(sent))
    return hmac.compare_digest(left, right)


def security_headers(*, no_store: bool) -> dict[str, str]:
    """The headers every answer gets; `no_store` for pages and JSON holding personal data."""
    headers = dict(SECURITY_HEADERS)
    if no_store:
        headers["Cache-Control"] = "no-store"
    return headers
