"""The prepare step, one module per dataset kind; :func:`.dispatch.prepare_dataset` picks one.

:mod:`.idx_cifar` (MNIST, Fashion-MNIST, CIFAR-10), :mod:`.celeba`, :mod:`.imagefolder`
(horse_or_human, rps and local trees: :func:`.imagefolder.prepare_imagefolder`); what they
share in :mod:`.common` and :mod:`.threads`.
"""
