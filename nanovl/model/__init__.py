"""Model modules: the hybrid LM, the RADIO vision encoder, the projector and the VL model."""
