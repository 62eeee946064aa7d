"""The credit model's one error type.

Every refusal of the credit model (bad features, a malformed model file, an impossible policy, a
training set it cannot fit) is a :class:`CreditModelError` with a dotted ``code``:

=============================  ==================================================================
code                           meaning
=============================  ==================================================================
``credit.input.not_finite``    a feature, price or revenue is NaN or infinite
``credit.input.negative``      a price, revenue, capacity or coverage below zero
``credit.input.range``         a value outside its range (a share above 1, coverage above 1, ...)
``credit.input.unknown``       a feature the model does not know
``credit.input.missing``       a required input is absent (price and revenue both unknown, ...)
``credit.input.type``          a value of the wrong type (text where a number is expected)
``credit.input.conflict``      two inputs that exclude each other (features and a price)
``credit.model.invalid``       a model file that does not have the scorecard schema
``credit.model.version``       a model file whose ``model_version`` is not the hash of its body
``credit.policy``              a limit policy or master scale that is not coherent
``credit.train``               training cannot produce a usable scorecard
``credit.sim``                 the simulator was asked for an impossible portfolio
=============================  ==================================================================
"""

from __future__ import annotations

from supet_base.errors import SupetError

__all__ = ["CreditModelError"]


class CreditModelError(SupetError):
    """The credit model refused its input, its model file or its policy (see ``code``)."""

    code = "credit"
