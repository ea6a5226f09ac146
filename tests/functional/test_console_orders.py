"""The village team ships paid orders from the console."""

from shop.extensions import db
from shop.orders.models import Order
from shop.orders.services import apply_payment
from tests.builders import buyer, make_order, make_product


def paid_order(product, quantity=1, **buyer_overrides):
    order = make_order([(product, quantity)], buyer(**buyer_overrides))
    apply_payment(order.order_no, f"T{order.order_no}", order.total_fen, paid=True)
    return order


def test_orders_list_filters_by_status_and_phone(staff_client, app):
    wine = make_product(name="树莓果酒")
    paid = paid_order(wine, phone="13800001111")
    pending = make_order([(wine, 1)], buyer(phone="13900002222"))

    page = staff_client.get("/console/orders").get_data(as_text=True)
    assert paid.order_no in page and pending.order_no in page

    page = staff_client.get("/console/orders?status=paid").get_data(as_text=True)
    assert paid.order_no in page and pending.order_no not in page

    page = staff_client.get("/console/orders?q=2222").get_data(as_text=True)
    assert pending.order_no in page and paid.order_no not in page


def test_ship_then_complete(staff_client, app):
    order = paid_order(make_product(), 2, address="陕西省城固县双井村一组")
    detail = staff_client.get(f"/console/orders/{order.order_no}").get_data(as_text=True)
    assert "陕西省城固县双井村一组" in detail  # staff need the address to ship

    page = staff_client.post(
        f"/console/orders/{order.order_no}/ship",
        data={"carrier": "中国邮政", "tracking_no": "bad no!"},
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "快递单号应为4到64位字母或数字" in page
    db.session.expire_all()
    assert db.session.get(Order, order.id).status == "paid"

    staff_client.post(
        f"/console/orders/{order.order_no}/ship",
        data={"carrier": "中国邮政", "tracking_no": "9876543210123"},
    )
    db.session.expire_all()
    shipped = db.session.get(Order, order.id)
    assert (shipped.status, shipped.carrier, shipped.tracking_no) == (
        "shipped",
        "中国邮政",
        "9876543210123",
    )
    buyer_view = staff_client.get(f"/orders/{order.token}").get_data(as_text=True)
    assert "9876543210123" in buyer_view

    staff_client.post(f"/console/orders/{order.order_no}/complete")
    db.session.expire_all()
    assert db.session.get(Order, order.id).status == "completed"


def test_unpaid_order_cannot_be_shipped(staff_client, app):
    order = make_order([(make_product(), 1)])
    page = staff_client.post(
        f"/console/orders/{order.order_no}/ship",
        data={"carrier": "顺丰", "tracking_no": "SF123456789"},
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "只有已支付、未发货的订单可以发货" in page
    db.session.expire_all()
    assert db.session.get(Order, order.id).status == "pending_payment"


def test_staff_cannot_refund_and_unknown_order_is_404(staff_client, app):
    order = paid_order(make_product())
    response = staff_client.post(f"/console/orders/{order.order_no}/refund", data={"amount": "1"})
    assert response.status_code == 403
    assert staff_client.get("/console/orders/NOPE").status_code == 404
