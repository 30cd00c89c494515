"""Names of the models clbench knows without importing open_clip (quick CLI commands)."""

PROXY_ARCH = "proxy-vit-tiny"
PROXY_ALIASES = {PROXY_ARCH, "proxy"}

# The paper's backbones (LoRSU paper, section 5) with the pretrained tags it used.
PAPER_BACKBONES = {
    "ViT-L-14": ("openai", "OpenAI CLIP ViT-L/14 (304 M vision params)"),
    "ViT-L-14-336": ("openai", "OpenAI CLIP ViT-L/14 at 336 px"),
    "EVA01-g-14": ("laion400m_s11b_b41k", "EVA-CLIP-G/14 (1.01 B vision params, timm trunk)"),
    "ViT-B-16": ("openai", "OpenAI CLIP ViT-B/16 (the paper's XImageNet-12 check)"),
}
