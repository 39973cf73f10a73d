"""Vision-language model adapters. Import `shared.vlm.registry`; it stays free of torch."""
