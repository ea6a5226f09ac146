"""The ledger's vocabulary of transaction kinds, and which income channel each counts in.

A transaction's ``kind`` is hashed into the chain, so these words are part of the
public export and never change meaning.
"""

# Online orders are "sale"; sales at the exhibition hall, events and live streams are
# "offline_sale" (their money arrives in a cash/bank account instead of Alipay clearing).
SALE_KINDS = ("sale", "offline_sale")
REFUND_KIND = "refund"

# channel → transaction kind of household income beyond sales.
INCOME_KINDS = {
    "land": "income_land",
    "wages": "income_wages",
    "dividend": "income_dividend",
    "coop": "income_coop",
}
INCOME_REVERSAL_KIND = "income_reversal"

# Public channel names (as in /api/v1/households "income_fen") for each posting kind. A
# refund or an income reversal counts against the channel of what it reverses; payouts
# move money already owed and count in none.
CHANNEL_OF_KIND = {
    "sale": "sales",
    "offline_sale": "sales",
    "income_land": "land",
    "income_wages": "wages",
    "income_dividend": "dividends",
    "income_coop": "coop",
}
CHANNELS = ("sales", "land", "wages", "dividends", "coop")
