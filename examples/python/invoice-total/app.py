"""invoice-total: a warden capability written in Python.

Built with componentize-py against `wit/world.wit`; see build.sh and
docs/authoring.md ("Python").
"""

from typing import List, Optional

import wit_world
from wit_world import (
    Invoice,
    InvoiceError,
    LineTotal,
    Summary,
)
from wit_world.imports import log
from componentize_py_types import Err


class WitWorld(wit_world.WitWorld):
    def total(self, invoice: Invoice) -> Summary:
        log.log(log.Level.INFO, f"totalling {invoice.id}: {len(invoice.lines)} lines")
        totals: List[LineTotal] = []
        for index, line in enumerate(invoice.lines):
            if line.unit_cents < 0:
                raise Err(InvoiceError(line=index, reason=f"negative unit price for {line.sku}"))
            discount = line.discount_percent if line.discount_percent is not None else 0
            if discount > 100:
                raise Err(InvoiceError(line=index, reason=f"discount over 100% for {line.sku}"))
            gross = line.quantity * line.unit_cents
            totals.append(LineTotal(sku=line.sku, cents=gross - gross * discount // 100))
        largest: Optional[LineTotal] = max(totals, key=lambda t: t.cents, default=None)
        total = sum(t.cents for t in totals)
        log.log_fields(
            log.Level.DEBUG,
            "invoice totalled",
            [("invoice", invoice.id), ("total-cents", str(total))],
        )
        return Summary(
            id=invoice.id,
            currency=invoice.currency,
            lines=totals,
            total_cents=total,
            largest=largest,
        )
