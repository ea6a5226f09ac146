"""The money core of Lianxin Market.

Plain Python and SQLAlchemy; this package never imports Flask, so it can be tested and
audited on its own. All amounts are integers in fen (分).
"""
