"""CMR-CLIP, the model library: configs, towers, view fusion, checkpoint format and inference.

``indexer`` and ``search`` import from here; the training program lives in ``cmrclip.train`` and the library
never imports it (``tests/test_architecture.py`` holds that).
"""
