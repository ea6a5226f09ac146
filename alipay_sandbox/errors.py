"""The one exception of the pretend Alipay."""


class SandboxError(Exception):
    """A request the pretend Alipay refuses; ``message`` is shown to the person paying
    (page requests) or returned as Alipay's ``sub_msg`` (API calls)."""

    def __init__(self, message: str, code: str = "40004", sub_code: str = ""):
        super().__init__(message)
        self.message = message
        self.code = code
        self.sub_code = sub_code

    def as_response(self) -> dict:
        msg = "Invalid Arguments" if self.code == "40002" else "Business Failed"
        return {"code": self.code, "msg": msg, "sub_code": self.sub_code, "sub_msg": self.message}
