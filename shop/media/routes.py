from flask import Blueprint, abort, current_app, send_from_directory

bp = Blueprint("media", __name__)

# Names are content hashes, so a file never changes once written: cache it for a year.
ONE_YEAR = 365 * 24 * 3600


@bp.route("/media/<filename>")
def photo(filename: str):
    if "/" in filename or "\\" in filename or not filename.endswith(".jpg"):
        abort(404)
    response = send_from_directory(
        current_app.config["UPLOAD_FOLDER"], filename, max_age=ONE_YEAR, conditional=True
    )
    response.headers["Cache-Control"] = f"public, max-age={ONE_YEAR}, immutable"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
