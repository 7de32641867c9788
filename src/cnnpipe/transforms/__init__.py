"""Batched on-device image transforms and the input pipeline, shared by train, evaluate and predict.

``spec`` turns a params list of ops into a ``BatchTransform`` (``build_transform``; the op
catalogue is its docstring), ``containers`` holds the op base class and the pipeline,
random_apply and random_choice containers, ``geometry`` and ``color`` the ops themselves, and
``pipeline`` the ``InputPipeline`` (transform, then normalize) that models are fed through.
Import from those modules: the package re-exports nothing, so importing one loads only the
modules it uses.
"""
