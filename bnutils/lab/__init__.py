"""bnutils.lab: the course layer, above the core a learner reads.

The core (``bnutils.batchnorm``, ``normalization``, ``layers``, ``training``, …) holds
Batch Normalization and the networks around it. This package holds what the notebooks
build on top of it: training runs and sweeps, looking inside a network, the loss
landscape, what the batch does to BN, fine-tuning with frozen statistics, timing, and
the course's figures. Each module is named after its concept; import every name from
its module (``from bnutils.lab.sweeps import sweep``), as the notebooks do.

Modules import the core and each other, never ``bnutils.checks`` or ``bnutils.widgets``
(which may import them).
"""
