"""Cost control in the core: spend aggregated from a backend's cost
ledger (``spend``), budgets checked and watched (``budgets``), and the reports the CLI renders
(``report``). Nothing here imports a backend: ledgers are reached through ``backend.CostLedger``."""
