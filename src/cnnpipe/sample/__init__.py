"""The offline sample mirror: small, synthetic versions of every upstream file.

A tool beside the pipeline, not part of its data path: :func:`cnnpipe.sample.mirror.write_sample_mirror`
(``cnnpipe sample``) writes them. Sizes are in :mod:`~cnnpipe.sample.sizes`, drawing in
:mod:`~cnnpipe.sample.canvas`, the images per dataset in :mod:`~cnnpipe.sample.render_small`
(MNIST, Fashion-MNIST, CIFAR-10), :mod:`~cnnpipe.sample.render_faces` (CelebA) and
:mod:`~cnnpipe.sample.render_scenes` (the ImageFolder sets and Dogs vs Cats), and the upstream
file formats in :mod:`~cnnpipe.sample.formats`.
"""
