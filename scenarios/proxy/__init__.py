"""clbench.scenarios.proxy: the offline proxy world and its tiny pretrained CLIP.

No CLIP weights or real datasets can be downloaded where clbench's tests and README command run,
so this package ships a stand-in for the LoRSU paper's setting (TSI target, DALL-E and ImageNet
controls): a procedurally rendered, captioned world (``world``), a word-level tokenizer
(``tokenizer``), an open_clip ``CLIP`` with a small native ViT pretrained on the clean world
(``model``, ``pretrain``; checkpoint ``proxy_clip.pt`` with provenance in ``proxy_clip.json``),
and the three data sets (``data``): ``proxy`` (known classes through one fixed, poor camera),
``proxy-clean`` (the same classes rendered cleanly) and ``proxy-generic`` (other classes, clean).
"""
