"""clbench.scenarios.proxy: the offline proxy world, its data sets and its CLIP's pretraining.

No CLIP weights or real datasets can be downloaded where clbench's tests and README command run,
so this package ships a stand-in for the LoRSU paper's setting (TSI target, DALL-E and ImageNet
controls): a procedurally rendered, captioned world (``world``), the pretraining of the proxy CLIP
on the clean world (``pretrain``; the model itself is the open_clip architecture
``proxy-vit-tiny`` of ``clbench.models``, with its word-level tokenizer and committed checkpoint),
and the three data sets (``data``): ``proxy`` (known classes through one fixed, poor camera),
``proxy-clean`` (the same classes rendered cleanly) and ``proxy-generic`` (other classes, clean).
"""
