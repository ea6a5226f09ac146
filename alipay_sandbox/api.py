"""The pretend Alipay's API methods (SDK ``execute()`` calls): one signed request in,
one signed answer out. Every refusal is an Alipay-style error object, never an HTTP
error, as Alipay answers."""

from alipay_sandbox.errors import SandboxError
from alipay_sandbox.protocol import biz_content, verify_merchant_request
from alipay_sandbox.refunds import trade_refund
from alipay_sandbox.trades import trade_close, trade_query
from alipay_sandbox.transfers import fund_query, fund_transfer
from shop.extensions import db

API_METHODS = {
    "alipay.trade.query": trade_query,
    "alipay.trade.close": trade_close,
    "alipay.trade.refund": trade_refund,
    "alipay.fund.trans.uni.transfer": fund_transfer,
    "alipay.fund.trans.common.query": fund_query,
}


def api_call(params: dict[str, str]) -> tuple[str, dict]:
    """Answer one signed API request: (response key, response object) for
    :func:`alipay_sandbox.protocol.signed_response`."""
    method = params.get("method", "")
    handler = API_METHODS.get(method)
    key = method.replace(".", "_") + "_response" if handler else "error_response"
    try:
        if handler is None:
            raise SandboxError("不存在的方法名", "40002", "isv.invalid-method")
        verify_merchant_request(params)
        return key, handler(biz_content(params))
    except SandboxError as error:
        db.session.rollback()
        return key, error.as_response()
