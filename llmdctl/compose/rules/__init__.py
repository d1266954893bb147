"""Named P/D rules over a composed plan; what each guards against is data (guides/rules.yaml).

The composer (``compose.evaluate``) runs the fix rules first, merging each fix's delta into a new
plan through the same merge contract as every layer, then the checks on the fixed plan, and refuses
when any check says error. The rules live by what they look at: the pods (``pods``), how requests
reach them (``routing``) and what the programs in the pods accept (``programs``); importing this
package registers all of them, in that order.
"""

from __future__ import annotations

from . import pods  # noqa: F401  (registration, in this order)
from . import routing  # noqa: F401
from . import programs  # noqa: F401
from .book import RULES, Rule, check_rule_catalog, describe

__all__ = ["RULES", "Rule", "check_rule_catalog", "describe"]
