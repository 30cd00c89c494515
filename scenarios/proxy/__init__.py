"""clbench.scenarios.proxy: the offline proxy world and its data sets.

No CLIP weights or real datasets can be downloaded where clbench's tests and README command run,
so this package ships a stand-in for the LoRSU paper's setting (TSI target, DALL-E and ImageNet
controls): a procedurally rendered, captioned world of shapes (``world``) and printed glyphs
(``glyphs``), real handwritten digits (``handwriting``: scikit-learn's load_digits) and the data sets
(``data``): ``proxy`` (known shapes through
one fixed, degrading camera) with controls ``proxy-clean`` and ``proxy-generic``, and
``proxy-hand`` (handwriting) with controls ``proxy-printed`` and ``proxy-glyphs``. The proxy CLIP
is the open_clip architecture ``proxy-vit-tiny`` of ``clbench.models`` (word-level tokenizer,
committed checkpoint), pretrained on clean shapes and printed glyphs by
``clbench.run.proxy_pretrain`` (``clbench proxy pretrain``).
"""
