"""QR codes (segno) for product pages, order trace pages and printed labels.

Codes carry absolute URLs under ``PUBLIC_BASE_URL`` so a printed label works from any
phone. Error correction level M survives a scuffed bottle label.
"""

import io

import segno
from flask import Response


def qr_svg(url: str, scale: int = 4, inline: bool = False) -> str:
    """An SVG of the QR code for ``url``: a standalone document, or (``inline``) an
    ``<svg>`` element to put in a page."""
    code = segno.make(url, error="m", micro=False)
    if inline:
        return code.svg_inline(scale=scale, border=2, dark="#000", light="#fff")
    buffer = io.BytesIO()
    code.save(
        buffer,
        kind="svg",
        scale=scale,
        border=2,
        dark="#000",
        light="#fff",
        xmldecl=True,
        svgns=True,
        title=url,
    )
    return buffer.getvalue().decode("utf-8")


def svg_response(svg: str) -> Response:
    """A QR code as an image response, cached for a day (a URL's code never changes)."""
    response = Response(svg, mimetype="image/svg+xml")
    response.cache_control.public = True
    response.cache_control.max_age = 86400
    return response
