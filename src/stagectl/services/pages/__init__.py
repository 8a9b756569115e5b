"""The ``--html`` pages (docs/reports.md, "HTML pages"): one function per report builds
its page from the command's result model, never by re-reading data.

``research``: backtest, walk-forward, cpcv; ``guard``: risk-guard --replay, paper-gate;
``ledger``: regime-analyze. The plotting helpers live in ``stagectl.reports.charts``, the
template and the atomic write in ``stagectl.reports.page``; stress-lab's page (built from
its signed envelope) in ``stagectl.reports.html``. Import these modules only when a page
is asked for: they load plotly.
"""
