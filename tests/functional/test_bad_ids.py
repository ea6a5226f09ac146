"""An id in a URL that no INTEGER column can hold is a 404, never a database error."""

HUGE = "99999999999999999999"


def test_huge_ids_in_urls_are_not_found(admin_client):
    for url in (
        f"/console/offline/batches/{HUGE}",
        f"/console/products/{HUGE}",
        f"/admin/households/{HUGE}/edit",
        f"/admin/households/{HUGE}/statement",
        "/console/offline/batches/2147483648",
    ):
        assert admin_client.get(url).status_code == 404, url
    assert admin_client.post(f"/console/offline/income/{HUGE}/reverse").status_code == 404


def test_a_huge_statement_cursor_shows_the_newest_page(client, app):
    from tests.builders import make_household

    make_household(code="SJ-001")
    assert client.get(f"/households/SJ-001?before={HUGE}").status_code == 200
