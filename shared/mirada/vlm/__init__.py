"""Vision-language model adapters. Import `mirada.vlm.registry`; it stays free of torch."""
