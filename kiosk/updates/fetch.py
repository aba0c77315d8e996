"""Fetching a release's wheel from the centre, with the kiosk's token.

The answer is not what makes the wheel trusted (its signed sha256 is, checked after): this only
keeps a wrong or endless answer from filling the disk."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import requests

from sync.protocol import API_PREFIX
from sync.releases import MAX_WHEEL_BYTES, WHEEL_PATH, SignedRelease


class DownloadFailed(OSError):
    pass


def wheel_fetcher(
    central_url: str,
    token: str,
    *,
    timeout_s: float = 60.0,
    session: requests.Session | None = None,
) -> Callable[[SignedRelease, Path], None]:
    http = session or requests.Session()

    def fetch(signed: SignedRelease, into: Path) -> None:
        manifest = signed.manifest
        url = central_url.rstrip("/") + API_PREFIX + WHEEL_PATH.format(version=manifest.version)
        limit = min(manifest.size, MAX_WHEEL_BYTES)
        try:
            with http.get(
                url,
                headers={"Authorization": f"Bearer {token}"},
                timeout=timeout_s,
                stream=True,
            ) as answer:
                if answer.status_code != 200:
                    raise DownloadFailed(
                        f"the centre answered {answer.status_code} for the wheel of "
                        f"{manifest.version}"
                    )
                got = 0
                with into.open("wb") as out:
                    for block in answer.iter_content(1 << 16):
                        got += len(block)
                        if got > limit:
                            raise DownloadFailed(
                                f"the wheel of {manifest.version} is longer than the "
                                f"{manifest.size} bytes signed"
                            )
                        out.write(block)
        except requests.RequestException as exc:
            into.unlink(missing_ok=True)
            raise DownloadFailed(f"could not fetch the wheel of {manifest.version}: {exc}") from exc
        except BaseException:
            into.unlink(missing_ok=True)
            raise

    return fetch
