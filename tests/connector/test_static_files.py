"""Static files are answered like every other page (connector.static_files)."""

from __future__ import annotations

from test_asgi import get

SECURITY_HEADERS = (
    "X-Content-Type-Options",
    "X-Frame-Options",
    "Content-Security-Policy",
    "Referrer-Policy",
)


async def test_a_static_path_that_climbs_out_is_404_with_the_security_headers():
    status, _, headers = await get("/static/../..")
    assert status == 404
    for name in SECURITY_HEADERS:
        assert name.encode() in headers, name


async def test_static_files_carry_the_security_headers():
    status, _, headers = await get("/static/css/connector.css")
    assert status == 200
    for name in SECURITY_HEADERS:
        assert name.encode() in headers, name
