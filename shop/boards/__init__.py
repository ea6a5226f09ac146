"""Public transparency: the love board (爱心榜), the results board (扶贫成果), household
and order trace pages, QR codes and open data — all served from aggregates that follow
the ledger in the same database transaction as each posting."""
