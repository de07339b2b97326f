"""The merchant API of payments, a module per resource: transactions (deposits and withdrawals), refunds, events."""
