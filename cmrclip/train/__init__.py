"""The training program: dataset, augmentation, captions, splits, training loop, evaluation, reports, plots.

It imports the model library (``cmrclip``) and the catalog; nothing in ``cmrclip``, ``indexer`` or ``search``
imports it back.
"""
