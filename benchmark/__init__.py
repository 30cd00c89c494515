"""clbench: a continual few-shot benchmark for CLIP vision encoders.

The protocol follows Panos et al., "Imperfect Vision Encoders: Efficient and Robust Tuning for
Vision-Language Models" (LoRSU): a CLIP vision encoder is updated over sessions of disjoint
classes with few shots each, and evaluated after every session on the target data and on control
data that it must not forget.
"""

__version__ = "0.1.0"
